import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { hasUdpEndpoint, listen, metric, udpCredentials } from './helpers/udp.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { UdpReceiver, type UdpFrame } from '../client/udp-receiver.ts';

// Long against the time a message takes to add, so a periodic check (a few per timeout)
// would almost never run between the deadline and the push.
const TIMEOUT_MS = 3000;

describeEachStore('a silent UDP endpoint is forgotten when its timeout passes', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let bobsOtherDesktop: TestUser;

  beforeAll(async () => {
    server = await startTestServer(kind, {
      HERALD_UDP_KEEPALIVE_MS: String(TIMEOUT_MS / 10),
      HERALD_UDP_ENDPOINT_TIMEOUT_MS: String(TIMEOUT_MS),
    });
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'windows');
    const other = new OzekiClient(server.http, newStation());
    await other.login(bob.apikey, 'windows');
    bobsOtherDesktop = { ...bob, client: other };
  });
  afterAll(async () => server?.stop());

  it('a push made just after the deadline does not go to the silent desktop, and it is forgotten on time', async () => {
    const conversation = (await alice.client.createConversation([bob.userid])).conversation as { id: string };
    const alive = await listen(bobsOtherDesktop);
    const silent = new UdpReceiver({ ...(await udpCredentials(bob)), keepAliveMs: 0 });
    const seenBySilent: UdpFrame[] = [];
    silent.on('notification', (frame: UdpFrame) => seenBySilent.push(frame));
    try {
      await silent.start();
      // The server heard the last proven hello before this instant.
      const welcomedAt = Date.now();
      const forgottenBefore = await metric(server, 'herald_udp_endpoints_forgotten_total');
      expect(hasUdpEndpoint(server, bob)).toBe(true);

      const deadline = welcomedAt + TIMEOUT_MS;
      await waitFor(() => Date.now() >= deadline, TIMEOUT_MS + 1000, 'the timeout to pass');
      await alice.client.addMessage(conversation.id, 'after-the-deadline', 'aGk=');
      await waitFor(() => alive.frames.some((f) => f.kind === 'message'), 5000, 'the message on the desktop still there');
      await waitFor(async () => (await metric(server, 'herald_udp_pending')) === 0, 5000, 'every push acknowledged');
      expect(seenBySilent.filter((f) => f.kind === 'message')).toEqual([]);
      expect(hasUdpEndpoint(server, bob)).toBe(false);
      expect(hasUdpEndpoint(server, bobsOtherDesktop)).toBe(true);
      expect(await metric(server, 'herald_udp_endpoints_forgotten_total')).toBe(forgottenBefore + 1);
    } finally {
      await silent.close();
      await alive.receiver.close();
    }
  });

  it('with nothing to send, the endpoint goes at its deadline, not at a later sweep', async () => {
    const silent = new UdpReceiver({ ...(await udpCredentials(bob)), keepAliveMs: 0 });
    try {
      const helloAt = Date.now();
      await silent.start();
      const welcomedAt = Date.now();
      const goneAt = await waitFor(() => !hasUdpEndpoint(server, bob) && Date.now(), TIMEOUT_MS + 2000, 'the endpoint to be forgotten');
      expect(goneAt).toBeGreaterThanOrEqual(helloAt + TIMEOUT_MS);
      // Timers and the 10 ms polling of waitFor may each be a little late on a busy machine.
      expect(goneAt - (welcomedAt + TIMEOUT_MS)).toBeLessThan(150);
    } finally {
      await silent.close();
    }
  });
});
