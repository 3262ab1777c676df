import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';
import { userKeyOf } from '../src/notify/feed.ts';
import { parseNotificationId } from '../src/model/notification.ts';

describeEachStore('Web Push of a message and its clean push', (kind) => {
  let pushService: WebPushMock;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let endpoint: string;
  let vapidPublicKey: string;
  const browser = new TestBrowser();

  beforeAll(async () => {
    pushService = await startWebPushMock();
    server = await startTestServer(kind, pushService.env);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'browser');
    await befriend(server, alice, bob);
    // The browser subscribes with Herald's key, as pushManager.subscribe({applicationServerKey}) does.
    const login = await bob.client.login(bob.apikey, 'browser');
    vapidPublicKey = login.vapidpublickey as string;
    endpoint = pushService.subscribe(vapidPublicKey);
    await bob.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: browser.subscription(endpoint) });
  });
  afterAll(async () => {
    await server?.stop();
    await pushService?.close();
  });

  it('Bob\'s closed browser tab gets "1 message from Alice" with badge 1, then the clean push with badge 0 after he reads', async () => {
    const created = await alice.client.createConversation([bob.userid]);
    const conversationId = (created.conversation as { id: string }).id;
    await alice.client.addMessage(conversationId, 'hello-1', 'aGVsbG8=');

    const [alert] = await waitFor(
      () => pushService.messagesTo(endpoint).length === 1 && pushService.messagesTo(endpoint),
      5000,
      'the message push',
    );
    const shown = browser.decrypt(alert.body);
    expect(shown).toEqual({
      type: 'message',
      title: '1 message from Alice',
      body: '',
      badge: 1,
      conversationid: conversationId,
      seq: expect.any(Number),
      id: expect.any(String),
    });
    // The id names the notification's place in Bob's feed.
    const named = parseNotificationId(shown.id as string);
    const notification = await server.app.parts.store.db
      .selectFrom('notifications')
      .select(['seq', 'title'])
      .where('user_key', '=', userKeyOf(bob.userid))
      .where('seq', '=', named!.seq)
      .executeTakeFirst();
    expect(notification).toEqual({ seq: shown.seq, title: shown.title });
    expect(alert.urgency).toBe('high');
    expect(alert.topic).toMatch(/^[A-Za-z0-9_-]{32}$/);
    // The push may wait as long as the outbox would have kept it: 24 hours from the message.
    expect(alert.ttl).toBeGreaterThan(24 * 3600 - 60);
    expect(alert.ttl).toBeLessThanOrEqual(24 * 3600);
    expect(alert.vapid.k).toBe(vapidPublicKey);
    expect(alert.vapid.aud).toBe(pushService.origin);
    expect(alert.vapid.sub).toBe('mailto:admin@localhost');
    expect(alert.vapid.exp).toBeGreaterThan(Date.now() / 1000);

    await bob.client.viewed(conversationId, ['hello-1']);
    const clean = await waitFor(() => pushService.messagesTo(endpoint)[1], 5000, 'the clean push');
    expect(browser.decrypt(clean.body)).toEqual({
      type: 'clean',
      badge: 0,
      conversationid: conversationId,
      seq: (shown.seq as number) + 1,
      id: expect.any(String),
    });
    expect(clean.urgency).toBe('normal');
    // Same Topic: a clean push waiting at the push service replaces the alert it clears.
    expect(clean.topic).toBe(alert.topic);

    // One connection, kept alive for both pushes; both outcomes recorded.
    expect(pushService.connections).toBe(1);
    await waitFor(
      async () => {
        const states = await server.app.parts.store.db.selectFrom('deliveries').select(['state', 'provider']).execute();
        return states.length === 2 && states.every((s) => s.state === 'delivered' && s.provider === 'webpush');
      },
      5000,
      'both deliveries recorded as delivered',
    );
  });
});
