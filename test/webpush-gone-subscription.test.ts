import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, befriend, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';

describeEachStore('a Web Push subscription the push service calls gone', (kind) => {
  let pushService: WebPushMock;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let goneEndpoint: string;
  let goodEndpoint: string;
  let laptopStation: string;
  let conversationId: string;
  const oldBrowser = new TestBrowser();
  const laptop = new TestBrowser();

  beforeAll(async () => {
    pushService = await startWebPushMock();
    server = await startTestServer(kind, pushService.env);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'browser');
    await befriend(server, alice, bob);
    goneEndpoint = pushService.subscribe();
    goodEndpoint = pushService.subscribe();
    await bob.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: oldBrowser.subscription(goneEndpoint) });
    const laptopClient = new OzekiClient(server.http, newStation());
    laptopStation = laptopClient.station;
    await laptopClient.login(bob.apikey, 'browser');
    await laptopClient.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: laptop.subscription(goodEndpoint) });
    const created = await alice.client.createConversation([bob.userid]);
    conversationId = (created.conversation as { id: string }).id;
  });
  afterAll(async () => {
    await server?.stop();
    await pushService?.close();
  });

  it('410 Gone disables the subscription, and nothing more is sent to it', async () => {
    pushService.expire(goneEndpoint);
    const db = server.app.parts.store.db;

    await alice.client.addMessage(conversationId, 'm-1', 'AAAA');
    await waitFor(() => pushService.messagesTo(goodEndpoint).length === 1, 5000, 'the laptop to get the first push');
    const disabled = await waitFor(
      () =>
        db
          .selectFrom('devices')
          .selectAll()
          .where('station', '=', bob.client.station)
          .where('push_disabled_at', 'is not', null)
          .executeTakeFirst(),
      5000,
      'the gone subscription to be disabled',
    );
    expect(disabled.push_provider).toBe('webpush');
    expect(disabled.push_disabled_reason).toContain('410');
    expect(pushService.answers.get(410)).toBe(1);

    const listed = await fetch(`${server.http}/v1/users/${bob.userid}/devices`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const devices = ((await listed.json()) as { devices: Array<{ station: string; push: { provider: string; enabled: boolean } | null }> })
      .devices;
    expect(devices.find((d) => d.station === bob.client.station)?.push).toMatchObject({ provider: 'webpush', enabled: false });
    expect(devices.find((d) => d.station === laptopStation)?.push).toMatchObject({ provider: 'webpush', enabled: true });

    await alice.client.addMessage(conversationId, 'm-2', 'BBBB');
    await waitFor(() => pushService.messagesTo(goodEndpoint).length === 2, 5000, 'the laptop to get the second push');
    expect(laptop.decrypt(pushService.messagesTo(goodEndpoint)[1].body)).toMatchObject({ title: '2 messages from Alice', badge: 2 });
    const rows = await db.selectFrom('deliveries').select(['station', 'state']).where('station', '=', bob.client.station).execute();
    // The second message made no outbox row for the gone subscription, and nothing more was tried.
    expect(rows.map((r) => r.state)).toEqual(['dead']);
    expect(pushService.answers.get(410)).toBe(1);
    expect(pushService.messagesTo(goneEndpoint)).toEqual([]);
  });
});
