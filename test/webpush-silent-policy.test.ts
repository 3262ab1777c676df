import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';
import { readFeed } from '../src/notify/feed.ts';

/*
 * A browser must show every push it receives (userVisibleOnly), so Herald sends it no silent
 * notification: no outbox row when the notification is silent from the start, a cancelled
 * one when only the device's alert kinds silence it. Alerts and clean pushes still go.
 */
describeEachStore('Web Push sends a browser nothing it would have to show silently', (kind) => {
  let pushService: WebPushMock;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let endpoint: string;
  let conversationId: string;
  const browser = new TestBrowser();

  beforeAll(async () => {
    pushService = await startWebPushMock();
    server = await startTestServer(kind, pushService.env);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'browser');
    await befriend(server, alice, bob);
    const login = await bob.client.login(bob.apikey, 'browser');
    endpoint = pushService.subscribe(login.vapidpublickey as string);
    await bob.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: browser.subscription(endpoint) });
    conversationId = ((await alice.client.createConversation([bob.userid])).conversation as { id: string }).id;
  });
  afterAll(async () => {
    await server?.stop();
    await pushService?.close();
  });

  const rowsOf = (notificationId: string) =>
    server.app.parts.store.db
      .selectFrom('deliveries')
      .select(['state', 'last_error'])
      .where('notification_id', '=', notificationId)
      .where('station', '=', bob.client.station)
      .execute();
  const newestMessage = async () => (await readFeed(server.app.parts.store.db, bob.userid, 0)).filter((n) => n.type === 'message').at(-1)!;

  it('a message of a muted conversation is counted but makes no Web Push row; reading it sends the clean push with seq and id', async () => {
    await bob.client.ok('chatconversation', { action: 'mute', conversationid: conversationId });
    await alice.client.addMessage(conversationId, 'quiet-1', 'ZW5j');
    const muted = await newestMessage();
    expect(muted).toMatchObject({ silent: true, badge: 1 });
    // The outbox rows are written in the message's own transaction: none is coming later.
    expect(await rowsOf(muted.id)).toEqual([]);

    await bob.client.viewed(conversationId, ['quiet-1']);
    const clean = await waitFor(() => pushService.messagesTo(endpoint)[0], 5000, 'the clean push');
    const payload = browser.decrypt(clean.body);
    expect(payload).toEqual({ type: 'clean', badge: 0, conversationid: conversationId, seq: muted.seq + 1, id: expect.any(String) });
    expect(pushService.messagesTo(endpoint)).toHaveLength(1);
    await bob.client.ok('chatconversation', { action: 'unmute', conversationid: conversationId });
  });

  it('an alert goes; one the browser does not alert for (alertkinds) is cancelled, not sent silently', async () => {
    const before = pushService.messagesTo(endpoint).length;
    await alice.client.addMessage(conversationId, 'loud-1', 'ZW5j');
    const alert = await newestMessage();
    await waitFor(() => pushService.messagesTo(endpoint).length === before + 1, 5000, 'the alert push');
    expect(browser.decrypt(pushService.messagesTo(endpoint)[before].body)).toMatchObject({ type: 'message', seq: alert.seq });
    await waitFor(async () => (await rowsOf(alert.id))[0]?.state === 'delivered', 5000, 'the alert delivered');

    await bob.client.ok('chatpreferences', { action: 'set', alertkinds: ['system.friend_request'] });
    await alice.client.addMessage(conversationId, 'loud-2', 'ZW5j');
    const withheld = await newestMessage();
    expect(withheld.silent).toBe(false);
    const [row] = await waitFor(async () => {
      const rows = await rowsOf(withheld.id);
      return rows[0]?.state === 'cancelled' && rows;
    });
    expect(row.last_error).toBe('a browser must show every push: silent notifications are not sent by Web Push');
    expect(pushService.messagesTo(endpoint)).toHaveLength(before + 1);
  });
});
