import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ADMIN_TOKEN, addUser, befriend, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { SQLITE } from './helpers/stores.ts';
import { chromiumMissing, launchBrowser, newContext, pageProblems, SCREENSHOTS } from './helpers/browser.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';
import { signIn, stubPushSubscribe, watchSockets, type PageGlobals } from './helpers/web-app.ts';
import { readFeed } from '../src/notify/feed.ts';

/*
 * The web app at / in Debian's Chromium, against a whole node on loopback: Bob signs in,
 * Alice writes to him through the Ozeki API, and the page shows it the way Bob would see it.
 */
describe.skipIf(chromiumMissing)('the web app', () => {
  let pushService: WebPushMock;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let conversationId: string;
  let origin: string;
  let closeBrowser: (() => Promise<void>) | undefined;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  const pushKeys = new TestBrowser();
  let endpoint: string;

  beforeAll(async () => {
    pushService = await startWebPushMock();
    server = await startTestServer(SQLITE, pushService.env);
    // Chromium refuses to register a service worker from an origin whose certificate it does
    // not trust, even with certificate errors ignored ("An SSL certificate error occurred when
    // fetching the script"), and Herald's is self-signed here. http://127.0.0.1 is a secure
    // context too, so the app, its worker and Web Push run there as on a trusted https origin.
    origin = server.http;
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    await befriend(server, alice, bob);
    conversationId = ((await alice.client.createConversation([bob.userid])).conversation as { id: string }).id;
    const vapid = (await (await fetch(`${server.http}/v1/webpush/vapid-public-key`)).json()) as { publickey: string };
    endpoint = pushService.subscribe(vapid.publickey);
    ({ browser, close: closeBrowser } = await launchBrowser());
    context = await newContext(browser, origin);
    await stubPushSubscribe(context, pushKeys.subscription(endpoint));
    page = await context.newPage();
    problems = pageProblems(page);
  }, 90_000);
  afterAll(async () => {
    await closeBrowser?.();
    await server?.stop();
    await pushService?.close();
  });

  const station = () => page.evaluate(() => (globalThis as unknown as PageGlobals).localStorage.getItem('herald.station')!);
  const titleIs = (p: Page, title: string, timeout = 5000) =>
    p.waitForFunction((t) => (globalThis as unknown as PageGlobals).document.title === t, title, { timeout });

  it('refuses an API key of another e-mail address, then signs Bob in with his own', async () => {
    await page.goto(origin);
    await page.getByLabel('E-mail').fill(alice.email);
    await page.getByLabel('API key').fill(bob.apikey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'This API key belongs to another e-mail address.' }).waitFor({ timeout: 5000 });
    await page.getByLabel('API key').fill('not-a-key');
    await page.getByLabel('E-mail').fill(bob.email);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'the apikey is not valid' }).waitFor({ timeout: 5000 });
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'app-sign-in.png') });

    await signIn(page, origin, bob);
    await page.getByRole('link', { name: 'Alice' }).waitFor({ timeout: 5000 });
    // The station the page made is now one of Bob's devices.
    expect(await station()).toMatch(/^[0-9a-f]{32}$/);
  });

  it('subscribes to Web Push and registers the subscription with Herald', async () => {
    // Permission is granted for the origin, so the app subscribes without a click.
    const bobStation = await station();
    const device = await waitFor(
      async () => {
        const response = await fetch(`${server.http}/v1/users/${bob.userid}/devices`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        const { devices } = (await response.json()) as { devices: Array<{ station: string; push: { provider: string } | null }> };
        return devices.find((d) => d.station === bobStation && d.push?.provider === 'webpush');
      },
      5000,
      "Bob's browser subscription",
    );
    expect(device.push!.provider).toBe('webpush');
    expect(await page.getByRole('button', { name: 'Enable notifications' }).count()).toBe(0);
  });

  it("shows Alice's message as a toast within one second, with (1) in the title", async () => {
    await alice.client.addMessage(conversationId, 'm-1', 'ZW5jcnlwdGVk');
    const sentAt = Date.now();
    await page.locator('.toast').filter({ hasText: '1 message from Alice' }).waitFor({ state: 'visible', timeout: 1000 });
    await titleIs(page, '(1) Herald', 1000);
    expect(Date.now() - sentAt).toBeLessThan(1000);
    await page.getByRole('link', { name: 'Alice, 1 unread' }).waitFor({ timeout: 1000 });
    // The favicon carries the count too.
    expect(await page.locator('link[rel="icon"]').getAttribute('href')).toMatch(/^data:image\/svg\+xml,/);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'app-conversations.png') });
  });

  it('opening the conversation clears the badge here and in another tab of Bob', async () => {
    const other = await context.newPage();
    try {
      await other.goto(origin);
      await other.getByRole('status').filter({ hasText: 'Live' }).waitFor({ timeout: 10_000 });
      await titleIs(other, '(1) Herald');

      await page.getByRole('link', { name: 'Alice, 1 unread' }).click();
      await page.getByRole('heading', { name: 'Alice' }).waitFor({ timeout: 5000 });
      await titleIs(page, 'Herald');
      await titleIs(other, 'Herald');
      await other.getByRole('link', { name: 'Alice', exact: true }).waitFor({ timeout: 5000 });
      expect(await page.locator('.toast').count()).toBe(0);
      const { conversations } = await bob.client.ok('chatconversation', { action: 'list' });
      expect((conversations as Array<{ id: string; unread: number }>).find((c) => c.id === conversationId)!.unread).toBe(0);

      // While Bob looks at the conversation, what Alice adds is read at once: no toast, no badge.
      await alice.client.addMessage(conversationId, 'm-1b', 'ZW5jcnlwdGVk');
      const [message] = (await readFeed(server.app.parts.store.db, bob.userid, 0)).filter((n) => n.type === 'message').slice(-1);
      await waitFor(
        async () => (await readFeed(server.app.parts.store.db, bob.userid, message.seq)).some((n) => n.type === 'clean'),
        5000,
        'the page to mark the new message read',
      );
      await titleIs(other, 'Herald');
      await titleIs(page, 'Herald');
      expect(await page.locator('.toast').count()).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('a reload resumes with since: what came meanwhile arrives once, nothing twice', async () => {
    await page.evaluate(() => ((globalThis as unknown as PageGlobals).location.hash = '#/'));
    const seenSeq = Number(
      await page.evaluate((id) => (globalThis as unknown as PageGlobals).localStorage.getItem(`herald.lastseq.${id}`), bob.userid),
    );
    expect(seenSeq).toBeGreaterThan(0);
    // The page is gone while Alice writes again.
    await page.goto('about:blank');
    await alice.client.addMessage(conversationId, 'm-2', 'ZW5jcnlwdGVk');

    const sockets = watchSockets(page);
    await page.goto(origin);
    await page.locator('.toast').filter({ hasText: '1 message from Alice' }).waitFor({ state: 'visible', timeout: 5000 });
    await titleIs(page, '(1) Herald');
    expect(new URL(sockets.urls[0]).searchParams.get('since')).toBe(String(seenSeq));
    const replayed = sockets.frames.map((f) => f.seq);
    expect(replayed.length).toBeGreaterThan(0);
    expect(Math.min(...replayed)).toBeGreaterThan(seenSeq);
    expect(new Set(replayed).size).toBe(replayed.length);

    // A second reload has nothing to replay: no toast, the badge from the hello.
    const again = watchSockets(page);
    await page.reload();
    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor({ timeout: 10_000 });
    await titleIs(page, '(1) Herald');
    expect(again.frames).toEqual([]);
    expect(await page.locator('.toast').count()).toBe(0);
  });

  it('a dropped network: the page says so, reconnects with since and shows what came meanwhile once', async () => {
    const sockets = watchSockets(page);
    const seenSeq = Number(
      await page.evaluate((id) => (globalThis as unknown as PageGlobals).localStorage.getItem(`herald.lastseq.${id}`), bob.userid),
    );
    await context.setOffline(true);
    await page.getByRole('status').filter({ hasText: 'Offline' }).waitFor({ timeout: 10_000 });
    await alice.client.addMessage(conversationId, 'm-offline', 'ZW5jcnlwdGVk');
    await context.setOffline(false);
    await page.locator('.toast').filter({ hasText: '2 messages from Alice' }).waitFor({ state: 'visible', timeout: 10_000 });
    await titleIs(page, '(2) Herald');
    const resumed = sockets.urls.at(-1)!;
    expect(Number(new URL(resumed).searchParams.get('since'))).toBeGreaterThanOrEqual(seenSeq);
    const seqs = sockets.frames.map((f) => f.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    // Chromium logs each reconnect tried while offline (more of them on a busy machine): this
    // case asked for those, so they are no fault of the page.
    const offline = problems.filter((p) => p.includes('net::ERR_INTERNET_DISCONNECTED'));
    problems.splice(0, problems.length, ...problems.filter((p) => !offline.includes(p)));
  });

  it('a muted conversation counts but does not toast, and sends nothing by Web Push', async () => {
    await page.getByRole('link', { name: 'Alice, 2 unread' }).click();
    await titleIs(page, 'Herald');
    await page.getByRole('button', { name: '1 hour' }).click();
    await page.getByText('Muted until').waitFor({ timeout: 5000 });
    await page.evaluate(() => ((globalThis as unknown as PageGlobals).location.hash = '#/'));
    const pushesBefore = pushService.messagesTo(endpoint).length;

    await alice.client.addMessage(conversationId, 'm-3', 'ZW5jcnlwdGVk');
    await titleIs(page, '(1) Herald');
    expect(await page.locator('.toast').count()).toBe(0);
    // No outbox row for the browser: a push it would have to show is not sent at all.
    const rows = await server.app.parts.store.db
      .selectFrom('deliveries')
      .select(['notification_id', 'state'])
      .where('station', '=', await station())
      .execute();
    const muted = (await readFeed(server.app.parts.store.db, bob.userid, 0)).filter((n) => n.type === 'message').at(-1)!;
    expect(muted.silent).toBe(true);
    expect(rows.map((r) => r.notification_id)).not.toContain(muted.id);
    expect(rows.length).toBeGreaterThan(0); // the earlier, alerting messages did go to it
    expect(pushService.messagesTo(endpoint).length).toBe(pushesBefore);
  });

  it('edits do-not-disturb and quiet hours', async () => {
    await page.getByRole('link', { name: 'Alert preferences' }).click();
    await page.getByLabel('Every week, silence alerts').check();
    await page.getByLabel('From').fill('21:30');
    await page.getByLabel('to', { exact: true }).fill('06:45');
    await page.getByLabel('Time zone').fill('Europe/Budapest');
    await page.getByRole('button', { name: 'Save quiet hours' }).click();
    await page.getByText('Quiet hours saved.').waitFor({ timeout: 5000 });
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByText('Do-not-disturb is on.').waitFor({ timeout: 5000 });

    const { preferences } = await bob.client.ok('chatpreferences', { action: 'get' });
    expect(preferences).toMatchObject({
      quiethours: { start: '21:30', end: '06:45', timezone: 'Europe/Budapest' },
      dnduntil: expect.any(String),
      silentnow: true,
      conversationmutes: { [conversationId]: expect.any(String) },
    });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'app-preferences.png') });
    // A bad time zone is refused with the server's own words, and nothing changes.
    await page.getByLabel('Time zone').fill('Mars/Olympus_Mons');
    await page.getByRole('button', { name: 'Save quiet hours' }).click();
    await page.getByRole('alert').filter({ hasText: 'Mars/Olympus_Mons' }).waitFor({ timeout: 5000 });
    // Refused calls show in the console as failed loads; anything else is a fault of the page.
    expect(problems.filter((p) => !p.includes('Failed to load resource'))).toEqual([]);
  });
  it('works from the keyboard, and signing out takes the browser subscription away', async () => {
    await page.evaluate(() => ((globalThis as unknown as PageGlobals).location.hash = '#/'));
    await page.getByRole('link', { name: /^Alice/ }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Alice' }).waitFor({ timeout: 5000 });
    const bobStation = await station();
    await page.getByRole('button', { name: 'Sign out' }).focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('E-mail').waitFor({ timeout: 5000 });
    expect(await page.title()).toBe('Herald');
    const response = await fetch(`${server.http}/v1/users/${bob.userid}/devices`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const { devices } = (await response.json()) as { devices: Array<{ station: string; push: unknown }> };
    expect(devices.find((d) => d.station === bobStation)!.push).toBeNull();
  });
});
