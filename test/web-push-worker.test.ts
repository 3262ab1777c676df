import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import { addUser, befriend, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { SQLITE } from './helpers/stores.ts';
import { chromiumMissing, launchBrowser, newContext, pageProblems } from './helpers/browser.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';
import { lastPushHandled, signIn, stubPushSubscribe, type PageGlobals } from './helpers/web-app.ts';
import { readFeed } from '../src/notify/feed.ts';
import { webPushPayload } from '../src/channels/webpush/payload.ts';
import type { Notification } from '../src/model/notification.ts';

interface Shown {
  tag: string;
  title: string;
  body: string;
  data: { conversationid: string | null; seq?: number; id?: string; url: string } | null;
}

/*
 * The service worker at /sw.js as Chromium runs it: pushes are handed to it through the
 * DevTools protocol (ServiceWorker.deliverPushMessage) with the payload Herald's Web Push
 * channel would encrypt for the same notification, so the worker and the payload cannot
 * drift apart unnoticed. What it shows is read back with registration.getNotifications().
 */
describe.skipIf(chromiumMissing)('the service worker and Web Push', () => {
  let pushService: WebPushMock;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let conversationId: string;
  let origin: string;
  let closeBrowser: (() => Promise<void>) | undefined;
  let context: BrowserContext;
  let page: Page;
  let cdp: CDPSession;
  let registrationId: string;
  let problems: string[];

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
    const launched = await launchBrowser();
    closeBrowser = launched.close;
    context = await newContext(launched.browser, origin);
    const vapid = (await (await fetch(`${server.http}/v1/webpush/vapid-public-key`)).json()) as { publickey: string };
    await stubPushSubscribe(context, new TestBrowser().subscription(pushService.subscribe(vapid.publickey)));
    page = await context.newPage();
    problems = pageProblems(page);
    await signIn(page, origin, bob);
  }, 90_000);
  afterAll(async () => {
    await closeBrowser?.();
    await server?.stop();
    await pushService?.close();
  });

  const shown = () =>
    page.evaluate(async () => {
      const registration = await (globalThis as unknown as PageGlobals).navigator.serviceWorker.ready;
      return (await registration.getNotifications()).map((n) => ({
        tag: n.tag,
        title: n.title,
        body: n.body,
        data: n.data as Shown['data'],
      }));
    });

  /** Bob's newest notification of a type, as Herald stored it. */
  const newest = async (type: string): Promise<Notification> => {
    const feed = await readFeed(server.app.parts.store.db, bob.userid, 0);
    return feed.filter((n) => n.type === type).at(-1)!;
  };

  /** Hands the worker a push and waits until it has handled it (the page, or the worker itself once the page is closed). */
  const deliver = async (payload: Record<string, unknown>, reader: { evaluate<R>(fn: () => Promise<R>): Promise<R> } = page) => {
    await cdp.send('ServiceWorker.deliverPushMessage', { origin, registrationId, data: JSON.stringify(payload) });
    await waitFor(async () => (await lastPushHandled(reader)) === payload.id, 10_000, `the worker to handle push ${String(payload.id)}`);
  };

  it('the worker is active and controls the app', async () => {
    const state = () =>
      page.evaluate(async () => (await (globalThis as unknown as PageGlobals).navigator.serviceWorker.ready).active?.state);
    // ready resolves once there is an active worker, which may still be activating.
    await waitFor(async () => (await state()) === 'activated', 5000, 'the worker activated');
    cdp = await context.newCDPSession(page);
    const found = new Promise<string>((resolve) => {
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        const ours = registrations.find((r) => r.scopeURL === `${origin}/` && !r.isDeleted);
        if (ours) resolve(ours.registrationId);
      });
    });
    await cdp.send('ServiceWorker.enable');
    registrationId = await Promise.race([
      found,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no service worker registration reported')), 5000)),
    ]);
  });

  it("shows Alice's message as a notification tagged with the conversation", async () => {
    await alice.client.addMessage(conversationId, 'w-1', 'ZW5jcnlwdGVk');
    const message = await waitFor(() => newest('message'), 5000, "Bob's message notification");
    await deliver(webPushPayload(message));
    const notification = (await shown()).find((n) => n.tag === `conversation:${conversationId}`);
    expect(notification).toMatchObject({
      title: '1 message from Alice',
      data: { conversationid: conversationId, seq: message.seq, id: message.id, url: `/#/c/${conversationId}` },
    });
  });

  it('ignores an older push of the same conversation that arrives late', async () => {
    await alice.client.addMessage(conversationId, 'w-2', 'ZW5jcnlwdGVk');
    const second = await waitFor(async () => {
      const n = await newest('message');
      return n.title === '2 messages from Alice' && n;
    });
    await deliver(webPushPayload(second));
    expect((await shown()).map((n) => n.title)).toEqual(['2 messages from Alice']);
    // The first push again (push services do not keep order): the newer one stays shown.
    const first = (await readFeed(server.app.parts.store.db, bob.userid, 0)).find((n) => n.title === '1 message from Alice')!;
    await deliver(webPushPayload(first));
    const ofConversation = (await shown()).filter((n) => n.tag === `conversation:${conversationId}`);
    expect(ofConversation.map((n) => n.title)).toEqual(['2 messages from Alice']);
  });

  it('a clean push closes the conversation’s notification; with the app visible no summary is shown', async () => {
    await bob.client.viewed(conversationId, ['w-2']);
    const clean = await waitFor(() => newest('clean'), 5000, 'the clean notification');
    const payload = webPushPayload(clean);
    expect(payload).toMatchObject({ type: 'clean', badge: 0, conversationid: conversationId, seq: clean.seq, id: clean.id });
    await deliver(payload);
    await waitFor(async () => !(await shown()).some((n) => n.tag === `conversation:${conversationId}`), 5000, 'the notification closed');
    expect((await shown()).some((n) => n.tag === 'herald-summary')).toBe(false);
    expect(problems).toEqual([]);
  });

  it('with no Herald window open, a clean push leaves a quiet summary in place of what it closed', async () => {
    // A conversation of its own, so that nothing the earlier cases showed or closed plays a part.
    const carol = await addUser(server, 'Carol');
    await befriend(server, carol, bob);
    const carolsId = ((await carol.client.createConversation([bob.userid])).conversation as { id: string }).id;
    await carol.client.addMessage(carolsId, 'c-1', 'ZW5jcnlwdGVk');
    const message = await waitFor(async () => {
      const n = await newest('message');
      return n.conversationId === carolsId && n;
    });
    await deliver(webPushPayload(message));
    expect((await shown()).map((n) => n.tag)).toEqual([`conversation:${carolsId}`]);

    // The app's tab closes; the DevTools session moves to a blank tab, and the worker is asked directly.
    const blank = await context.newPage();
    cdp = await context.newCDPSession(blank);
    await cdp.send('ServiceWorker.enable');
    await page.close();
    const [serviceWorker] = context.serviceWorkers();
    const shownByWorker = () =>
      serviceWorker.evaluate(async () => {
        const scope = globalThis as unknown as { registration: { getNotifications(): Promise<Array<{ tag: string; body: string }>> } };
        return (await scope.registration.getNotifications()).map((n) => ({ tag: n.tag, body: n.body }));
      });

    await bob.client.viewed(carolsId, ['c-1']);
    const clean = await waitFor(async () => {
      const n = await newest('clean');
      return n.conversationId === carolsId && n;
    });
    await deliver(webPushPayload(clean), serviceWorker);
    await waitFor(
      async () => JSON.stringify(await shownByWorker()) === JSON.stringify([{ tag: 'herald-summary', body: 'All caught up' }]),
      5000,
      "the summary in place of Carol's notification",
    );

    // The next alert (Alice writes again) takes the summary's place.
    await alice.client.addMessage(conversationId, 'w-3', 'ZW5jcnlwdGVk');
    const next = await waitFor(async () => {
      const n = await newest('message');
      return n.data.messageid === 'w-3' && n;
    });
    await deliver(webPushPayload(next), serviceWorker);
    await waitFor(
      async () => (await shownByWorker()).map((n) => n.tag).join() === `conversation:${conversationId}`,
      5000,
      "Alice's notification alone",
    );
  });
});
