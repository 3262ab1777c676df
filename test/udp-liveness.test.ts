import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { hasUdpEndpoint, listen, metric, udpCredentials } from './helpers/udp.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { UdpReceiver, type UdpFrame } from '../client/udp-receiver.ts';
import { readFeed } from '../src/notify/feed.ts';

// Long enough that a busy machine does not make the keep-alive side miss its deadline.
const TIMEOUT_MS = 1000;
const FRAMES_SENT = ['herald_frames_sent_total', 'channel="udp"'] as const;

describeEachStore('UDP endpoints that fall silent', (kind) => {
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
    await befriend(server, alice, bob);
    const other = new OzekiClient(server.http, newStation());
    await other.login(bob.apikey, 'windows');
    bobsOtherDesktop = { ...bob, client: other };
  });
  afterAll(async () => server?.stop());

  it('after the client is silent past the timeout the server stops sending to it, and a resumed client gets what it missed', async () => {
    const conversation = (await alice.client.createConversation([bob.userid])).conversation as { id: string };
    const silent = await listen(bob, { keepAliveMs: 0 });
    // The other desktop keeps its binding alive at the interval the server announces.
    const alive = await listen(bobsOtherDesktop);
    try {
      const forgottenBefore = await metric(server, 'herald_udp_endpoints_forgotten_total');
      await waitFor(() => !hasUdpEndpoint(server, bob), 5000, 'the silent endpoint to be forgotten');
      expect(await metric(server, 'herald_udp_endpoints_forgotten_total')).toBeGreaterThan(forgottenBefore);
      expect(hasUdpEndpoint(server, bobsOtherDesktop)).toBe(true);

      const seenBySilent = silent.receiver.stats.received;
      const lastSeq = silent.receiver.lastSeq;
      const sentBefore = await metric(server, ...FRAMES_SENT);
      const resentBefore = await metric(server, 'herald_udp_retransmits_total');
      await alice.client.addMessage(conversation.id, 'while-away', 'aGk=');

      // One frame (not counting copies sent again), to the device still there.
      await waitFor(() => alive.frames.some((f) => f.kind === 'message'), 5000, 'the message on the live desktop');
      await waitFor(async () => (await metric(server, 'herald_udp_pending')) === 0, 5000, 'every push acknowledged');
      const resent = (await metric(server, 'herald_udp_retransmits_total')) - resentBefore;
      expect(await metric(server, ...FRAMES_SENT)).toBe(sentBefore + 1 + resent);

      // Bob's first desktop comes back and resumes from the last sequence it handled.
      const resumed = new UdpReceiver({ ...(await udpCredentials(bob)), lastSeq, keepAliveMs: 0 });
      const caughtUp: UdpFrame[] = [];
      resumed.on('notification', (frame: UdpFrame) => caughtUp.push(frame));
      try {
        await resumed.start();
        const missed = (await readFeed(server.app.parts.store.db, bob.userid, lastSeq)).map((n) => n.seq);
        expect(missed.length).toBeGreaterThan(0);
        await waitFor(() => caughtUp.length >= missed.length, 5000, 'the missed notifications');
        expect(caughtUp.map((f) => f.seq)).toEqual(missed);
        expect(caughtUp.some((f) => f.kind === 'message' && f.conversationid === conversation.id)).toBe(true);
      } finally {
        await resumed.close();
      }
      expect(silent.receiver.stats.received).toBe(seenBySilent);
    } finally {
      await silent.receiver.close();
      await alive.receiver.close();
    }
  });
});
