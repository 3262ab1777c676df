import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SQLITE } from './helpers/stores.ts';
import { addUser, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';
import { isInternalAddress } from '../src/chat/push-subscription.ts';

/**
 * A Web Push endpoint is a URL the user chooses, and Herald POSTs to it. Unless the operator
 * allows it (HERALD_WEBPUSH_ALLOW_PRIVATE=1, as the other Web Push tests do for their loopback
 * double), Herald does not call loopback, private or link-local addresses for a user.
 */
describe('a Web Push endpoint on an internal address', () => {
  let pushService: WebPushMock;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let conversationId: string;
  const browser = new TestBrowser();

  beforeAll(async () => {
    pushService = await startWebPushMock();
    // The double's certificate is trusted, so only the address rule stands between Herald and it.
    server = await startTestServer(SQLITE, { HERALD_CA_FILE: pushService.env.HERALD_CA_FILE });
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'browser');
    const created = await alice.client.createConversation([bob.userid]);
    conversationId = (created.conversation as { id: string }).id;
  });
  afterAll(async () => {
    await server?.stop();
    await pushService?.close();
  });

  async function disabledReason(): Promise<string> {
    const db = server.app.parts.store.db;
    const device = await waitFor(
      () =>
        db
          .selectFrom('devices')
          .select('push_disabled_reason')
          .where('station', '=', bob.client.station)
          .where('push_disabled_at', 'is not', null)
          .executeTakeFirst(),
      5000,
      "Bob's subscription to be disabled",
    );
    return device.push_disabled_reason ?? '';
  }

  it.each([
    ['an IP address on loopback', () => pushService.subscribe()],
    ['a host name that resolves to loopback', () => pushService.subscribe().replace('127.0.0.1', 'localhost')],
  ])('is never called when it is %s; the subscription is disabled saying why', async (_what, endpointOf) => {
    const endpoint = endpointOf();
    await bob.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: browser.subscription(endpoint) });
    await alice.client.addMessage(conversationId, `m-${endpoint}`, 'AAAA');

    expect(await disabledReason()).toMatch(/private or loopback address/);
    expect(pushService.connections).toBe(0);
    expect(pushService.messages).toEqual([]);
  });

  it('push services on public addresses stay reachable', () => {
    for (const address of ['142.250.74.106', '17.57.146.20', '2a00:1450:4001:80b::200a', '::ffff:142.250.74.106']) {
      expect({ address, internal: isInternalAddress(address) }).toEqual({ address, internal: false });
    }
    for (const address of ['127.0.0.1', '10.0.0.8', '169.254.169.254', '192.168.1.1', '::1', 'fd12::1', '::ffff:127.0.0.1']) {
      expect({ address, internal: isInternalAddress(address) }).toEqual({ address, internal: true });
    }
  });
});
