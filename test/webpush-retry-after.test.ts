import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';

describeEachStore('a push service asking Herald to slow down', (kind) => {
  let pushService: WebPushMock;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let endpoint: string;
  const browser = new TestBrowser();

  beforeAll(async () => {
    pushService = await startWebPushMock();
    server = await startTestServer(kind, pushService.env);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'browser');
    await befriend(server, alice, bob);
    endpoint = pushService.subscribe();
    await bob.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: browser.subscription(endpoint) });
  });
  afterAll(async () => {
    await server?.stop();
    await pushService?.close();
  });

  it('429 with Retry-After: 1 is retried no sooner than a second later, and the push arrives', async () => {
    pushService.failNext({ status: 429, retryAfter: 1, endpoint });
    const refusals: Array<{ status: number; at: number }> = [];
    pushService.events.on('refused', (r) => refusals.push(r));

    const created = await alice.client.createConversation([bob.userid]);
    const conversationId = (created.conversation as { id: string }).id;
    await alice.client.addMessage(conversationId, 'slow-1', 'AAAA');

    const [arrived] = await waitFor(
      () => pushService.messagesTo(endpoint).length === 1 && pushService.messagesTo(endpoint),
      8000,
      'the push to arrive',
    );
    expect(refusals.map((r) => r.status)).toEqual([429]);
    expect(arrived.at - refusals[0].at).toBeGreaterThanOrEqual(1000);
    expect(browser.decrypt(arrived.body)).toMatchObject({
      type: 'message',
      title: '1 message from Alice',
      badge: 1,
      conversationid: conversationId,
    });

    const [row] = await waitFor(
      async () => {
        const rows = await server.app.parts.store.db.selectFrom('deliveries').select(['state', 'attempts']).execute();
        return rows.length === 1 && rows[0].state === 'delivered' && rows;
      },
      5000,
      'the delivery to be recorded',
    );
    expect(row.attempts).toBe(2);
  });
});
