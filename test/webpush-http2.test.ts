import { afterEach, describe, expect, it, vi } from 'vitest';
import { SQLITE } from './helpers/stores.ts';
import { addUser, befriend, startTestServer, waitFor, type TestServer } from './helpers/server.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { startWebPushMock, type WebPushMock, type WebPushMockOptions } from './mocks/webpush.ts';

/*
 * Herald speaks to each push service in the protocol it offers by ALPN: HTTP/2 to one that
 * offers h2 (FCM's and Mozilla's do), HTTP/1.1 to one that does not, or to every one with
 * HERALD_NO_WEBPUSH_HTTP2=1. The protocol is the push service's business only: the pushes
 * themselves are the same.
 */
describe('Web Push over the protocol the push service offers', () => {
  let pushService: WebPushMock | undefined;
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.stop();
    await pushService?.close();
    server = pushService = undefined;
    vi.unstubAllEnvs();
  });

  /** Alice sends Bob three messages; answers what his browser's push service received. */
  async function threeMessagesToBob(mockOptions: WebPushMockOptions) {
    pushService = await startWebPushMock(mockOptions);
    server = await startTestServer(SQLITE, pushService.env);
    const alice = await addUser(server, 'Alice');
    const bob = await addUser(server, 'Bob', 'browser');
    await befriend(server, alice, bob);
    const browser = new TestBrowser();
    const login = await bob.client.login(bob.apikey, 'browser');
    const endpoint = pushService.subscribe(login.vapidpublickey as string);
    await bob.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: browser.subscription(endpoint) });
    const created = await alice.client.createConversation([bob.userid]);
    const conversationId = (created.conversation as { id: string }).id;
    for (const id of ['m-1', 'm-2', 'm-3']) await alice.client.addMessage(conversationId, id, 'aGVsbG8=');
    const service = pushService;
    const messages = await waitFor(() => service.messagesTo(endpoint).length === 3 && service.messagesTo(endpoint), 5000, 'three pushes');
    return { messages, badges: messages.map((m) => browser.decrypt(m.body).badge).sort(), connections: service.connections };
  }

  it('goes over one HTTP/2 connection to a push service that offers h2', async () => {
    const { messages, badges, connections } = await threeMessagesToBob({});
    expect(messages.map((m) => m.httpVersion)).toEqual(['2.0', '2.0', '2.0']);
    expect(badges).toEqual([1, 2, 3]);
    // The connection that asked for h2 carries the pushes: no second one.
    expect(connections).toBe(1);
  });

  it('goes over HTTP/1.1 to a push service that offers only http/1.1', async () => {
    const { messages, badges } = await threeMessagesToBob({ http1Only: true });
    expect(messages.map((m) => m.httpVersion)).toEqual(['1.1', '1.1', '1.1']);
    expect(badges).toEqual([1, 2, 3]);
  });

  it('goes over HTTP/1.1 everywhere with HERALD_NO_WEBPUSH_HTTP2=1', async () => {
    // The channel reads its switches from the environment of the process it runs in (this one).
    vi.stubEnv('HERALD_NO_WEBPUSH_HTTP2', '1');
    const { messages, badges } = await threeMessagesToBob({});
    expect(messages.map((m) => m.httpVersion)).toEqual(['1.1', '1.1', '1.1']);
    expect(badges).toEqual([1, 2, 3]);
  });
});
