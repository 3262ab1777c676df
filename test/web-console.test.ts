import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { SQLITE } from './helpers/stores.ts';
import { ADMIN_TOKEN } from './helpers/server.ts';
import { addPushDevice, startPushScene, type PushScene } from './helpers/push.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { chromiumMissing, launchBrowser, newContext, pageProblems, SCREENSHOTS } from './helpers/browser.ts';
import { apnsToken } from './mocks/push-env.ts';

/*
 * The admin console at /console, driven in Debian's Chromium: an operator signs in with the
 * admin token, reads the node's numbers, finds Bob, sees his devices, sends his iPhone a test
 * push that reaches the APNs double, and watches notifications arrive in the live tail.
 */

describe.skipIf(chromiumMissing)('the admin console in Chromium', () => {
  let scene: PushScene;
  let browser: Browser;
  let closeBrowser: (() => Promise<void>) | undefined;
  let live: RecordingReceiver | undefined;
  const iphone = apnsToken();
  let iphoneStation: string;

  const send = (to: string, title: string) =>
    fetch(`${scene.server.http}/v1/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: [to], title, conversationid: 'orders' }),
    });

  beforeAll(async () => {
    scene = await startPushScene(SQLITE, { HERALD_PUSH_HOLD_S: '0' });
    iphoneStation = (await addPushDevice(scene.server, scene.bob, 'ios', iphone)).station;
    // Bob's first station is online over WebSocket: the overview counts it.
    live = await connectDevice(scene.server, scene.bob.client.station);
    ({ browser, close: closeBrowser } = await launchBrowser());
  }, 90_000);
  afterAll(async () => {
    live?.receiver.close();
    await closeBrowser?.();
    await scene?.stop();
  });

  it("lists Bob's devices, and a test push from the console reaches the APNs double", async () => {
    const { server, bob, doubles } = scene;
    expect((await send(bob.email, 'Order 1 shipped')).status).toBe(202);
    await expect.poll(() => doubles.apns.pushesTo(iphone).length, { timeout: 10_000 }).toBe(1);

    const context = await newContext(browser, server.https);
    const page = await context.newPage();
    const problems = pageProblems(page);
    await page.goto(`${server.https}/console`);

    await page.getByLabel('Admin token or API token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();

    // Overview: this node's connections, the outbox and the charts, from GET /v1/stats.
    await expect.poll(() => page.locator('[data-channel="websocket"]').textContent(), { timeout: 10_000 }).toBe('1');
    await expect(
      page.getByRole('img', { name: /^Notifications, per 60 s over the last hour\. committed: 1 in the hour/ }).count(),
    ).resolves.toBe(1);
    await expect(page.getByRole('img', { name: /^Pushes delivered.*delivered: 1 in the hour/ }).count()).resolves.toBe(1);
    await expect(page.getByRole('row', { name: /^apns 0 0 0 0$/ }).count()).resolves.toBe(1);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'console-overview.png') });

    // Users: search "bob", open his devices.
    await page.getByRole('button', { name: 'Users' }).click();
    await page.getByLabel('Search users').fill('bob');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('button', { name: 'Devices of Bob' }).click();
    const devices = page.getByRole('table', { name: 'Devices of Bob' });
    await devices.waitFor({ timeout: 10_000 });
    const row = devices.locator(`tr[data-station="${iphoneStation}"]`);
    await expect(row.locator('td').nth(1).textContent()).resolves.toBe('ios');
    await expect(row.locator('td').nth(2).textContent()).resolves.toBe('apns, enabled');
    await expect(devices.locator(`tr[data-station="${bob.client.station}"] td`).nth(2).textContent()).resolves.toBe('no push token');

    await row.getByRole('button', { name: 'Send test push' }).click();
    await expect.poll(() => row.getByTestId('answer').textContent(), { timeout: 10_000 }).toMatch(/^apns: delivered \(200 apns-id /);
    const pushes = doubles.apns.pushesTo(iphone);
    expect(pushes).toHaveLength(2);
    expect(pushes[1].payload.aps.alert.title).toBe('Herald test push');
    expect(await row.getByTestId('answer').textContent()).toBe(`apns: delivered (200 apns-id ${pushes[1].apnsId})`);
    // The same answer is announced in the live region.
    await expect.poll(() => page.getByRole('status').last().textContent()).toContain('apns: delivered');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'console-devices.png') });

    // Live tail: a notification sent while the page is open appears at the top.
    await page.getByRole('button', { name: 'Live tail' }).click();
    expect((await send(bob.email, 'Order 2 shipped')).status).toBe(202);
    const newest = page.getByRole('list', { name: 'Notifications, newest first' }).locator('li').first();
    await expect.poll(() => newest.locator('.title').textContent(), { timeout: 10_000 }).toBe('Order 2 shipped');
    await expect(newest.textContent()).resolves.toContain(`user ${bob.userid.slice(0, 8)}`);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'console-tail.png') });

    expect(problems).toEqual([]);
    await context.close();
  });

  it('keeps the operator out with a wrong token, saying why, and is usable from the keyboard', async () => {
    const context = await newContext(browser, scene.server.https);
    const page = await context.newPage();
    await page.goto(`${scene.server.https}/console`);
    // Tab to the token field, type, and press Enter.
    await page.keyboard.press('Tab');
    await page.keyboard.type('not-the-admin-token');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('alert').textContent(), { timeout: 10_000 }).toContain('Herald refused the token (401)');

    const makeToken = async (scopes: string[]) => {
      const made = await fetch(`${scene.server.http}/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'console', scopes }),
      });
      return ((await made.json()) as { token: string }).token;
    };
    // A token without stats:read is refused with 403, and the page says which scope it lacks.
    await page.getByLabel('Admin token or API token').fill(await makeToken(['notifications:send']));
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('alert').textContent(), { timeout: 10_000 }).toContain('stats:read');

    // A token that may read the stats signs in; the sections are reached with Tab and Enter.
    await page.getByLabel('Admin token or API token').fill(await makeToken(['stats:read', 'feed:read']));
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: 10_000 });
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Users');
    await page.keyboard.press('Enter');
    await page.getByLabel('Search users').focus();
    await page.keyboard.type('bob');
    await page.keyboard.press('Enter');
    // Searching needs users:read: the 403 sends the operator back to sign in, saying why.
    await expect.poll(() => page.getByRole('alert').textContent(), { timeout: 10_000 }).toContain('users:read');
    expect(await page.getByLabel('Admin token or API token').isVisible()).toBe(true);
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    await context.close();
  });
});
