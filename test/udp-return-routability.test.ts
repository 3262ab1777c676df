import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, befriend, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { hasUdpEndpoint, listen, metric, proveAddress, rawSocket, udpCredentials, udpPort, waitForMetric } from './helpers/udp.ts';
import { CounterClock, encodeDatagram, helloPayload, openDatagram, secretBytes } from '../client/udp-protocol.ts';
import { UdpReceiver, type UdpFrame } from '../client/udp-receiver.ts';

const DROPPED = 'herald_udp_datagrams_dropped_total';

/**
 * Counters for hand-made datagrams, half a millisecond off the receivers' (which are whole
 * milliseconds in microseconds), so a raw socket and a receiver of the same station never
 * send the same counter and trip the replay window.
 */
function offsetClock() {
  const clock = new CounterClock();
  return { next: () => clock.next() + 500n };
}

describeEachStore('UDP pushes go only to addresses that proved they receive there, on $name', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let port: number;
  const clock = offsetClock();

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'windows');
    carol = await addUser(server, 'Carol', 'windows');
    await befriend(server, alice, bob);
    port = udpPort((await udpCredentials(bob)).endpoint);
  });
  afterAll(async () => server?.stop());

  it("Bob's correctly signed hello from an address that never echoes the cookie gets one challenge no larger than itself, and Bob's pushes stay with his desktop", async () => {
    const { receiver, frames } = await listen(bob);
    const spoofed = await rawSocket();
    try {
      const { secret, station } = await udpCredentials(bob);
      const key = secretBytes(secret);
      const hello = encodeDatagram(key, { type: 'hello', station, counter: clock.next(), payload: helloPayload() });
      spoofed.socket.send(hello, port, '127.0.0.1');
      const challenge = await waitFor(() => spoofed.received[0], 5000, 'the challenge');
      expect(openDatagram(key, challenge)).toMatchObject({ type: 'challenge', payload: { cookie: expect.any(String) } });
      expect(challenge.length).toBeLessThanOrEqual(hello.length);

      // A resume from the unproven address is refused: not one push goes there.
      const unboundBefore = await metric(server, DROPPED, 'reason="unbound"');
      spoofed.socket.send(
        encodeDatagram(key, { type: 'resume', station, counter: clock.next(), payload: { after: 0 } }),
        port,
        '127.0.0.1',
      );
      await waitForMetric(server, DROPPED, 'reason="unbound"', unboundBefore + 1);

      const conversation = (await alice.client.createConversation([bob.userid])).conversation as { id: string };
      await alice.client.addMessage(conversation.id, 'to-the-proven-desktop', 'aGk=');
      await waitFor(() => frames.some((f) => f.kind === 'message'), 5000, "Alice's message at Bob's desktop");
      await waitFor(async () => (await metric(server, 'herald_udp_pending')) === 0, 5000, 'every push acknowledged');
      expect(spoofed.received).toHaveLength(1);
    } finally {
      await receiver.close();
      await spoofed.close();
    }
  });

  it('a hello too short to be answered without amplification gets no answer at all', async () => {
    const { secret, station } = await udpCredentials(carol);
    const raw = await rawSocket();
    try {
      const before = await metric(server, DROPPED, 'reason="unpadded"');
      const bare = encodeDatagram(secretBytes(secret), { type: 'hello', station, counter: clock.next(), payload: {} });
      raw.socket.send(bare, port, '127.0.0.1');
      await waitForMetric(server, DROPPED, 'reason="unpadded"', before + 1);
      expect(raw.received).toHaveLength(0);
      expect(hasUdpEndpoint(server, carol)).toBe(false);
    } finally {
      await raw.close();
    }
  });

  it('a cookie binds only the address it was sent to; echoed from elsewhere it draws another challenge', async () => {
    const credentials = await udpCredentials(carol);
    const key = secretBytes(credentials.secret);
    const { station } = credentials;
    const sentTo = await rawSocket();
    const elsewhere = await rawSocket();
    try {
      sentTo.socket.send(
        encodeDatagram(key, { type: 'hello', station, counter: clock.next(), payload: helloPayload() }),
        port,
        '127.0.0.1',
      );
      const cookie = openDatagram(key, await waitFor(() => sentTo.received[0], 5000, 'the challenge')).payload.cookie as string;

      elsewhere.socket.send(
        encodeDatagram(key, { type: 'hello', station, counter: clock.next(), payload: helloPayload(cookie) }),
        port,
        '127.0.0.1',
      );
      const answer = openDatagram(key, await waitFor(() => elsewhere.received[0], 5000, 'the answer elsewhere'));
      expect(answer.type).toBe('challenge');
      expect(answer.payload.cookie).not.toBe(cookie);
      expect(hasUdpEndpoint(server, carol)).toBe(false);

      // Where the cookie was sent, echoing it binds the endpoint.
      sentTo.socket.send(
        encodeDatagram(key, { type: 'hello', station, counter: clock.next(), payload: helloPayload(cookie) }),
        port,
        '127.0.0.1',
      );
      const welcome = openDatagram(key, await waitFor(() => sentTo.received[1], 5000, 'the welcome'));
      expect(welcome).toMatchObject({ type: 'welcome', payload: { new: true, cookie: expect.any(String) } });
      expect(hasUdpEndpoint(server, carol)).toBe(true);
      expect(elsewhere.received).toHaveLength(1);
    } finally {
      await sentTo.close();
      await elsewhere.close();
    }
  });

  it('a keep-alive from the bound address that lacks a valid cookie is challenged, not welcomed', async () => {
    const credentials = await udpCredentials(carol);
    const key = secretBytes(credentials.secret);
    const raw = await rawSocket();
    try {
      const { welcome } = await proveAddress(raw, credentials, clock);
      const stale = encodeDatagram(key, { type: 'hello', station: credentials.station, counter: clock.next(), payload: helloPayload() });
      raw.socket.send(stale, port, '127.0.0.1');
      expect(openDatagram(key, await waitFor(() => raw.received[2], 5000, 'the answer')).type).toBe('challenge');

      const fresh = encodeDatagram(key, {
        type: 'hello',
        station: credentials.station,
        counter: clock.next(),
        payload: helloPayload(welcome.payload.cookie as string),
      });
      raw.socket.send(fresh, port, '127.0.0.1');
      const keptAlive = openDatagram(key, await waitFor(() => raw.received[3], 5000, 'the keep-alive welcome'));
      expect(keptAlive).toMatchObject({ type: 'welcome', payload: { new: false } });
    } finally {
      await raw.close();
    }
  });

  it("when Bob's desktop moves to a new address it proves the new one, and pushes follow it there", async () => {
    const before = await listen(bob, { keepAliveMs: 0 });
    const after = new UdpReceiver({ ...(await udpCredentials(bob)), keepAliveMs: 0 });
    const events: string[] = [];
    const frames: UdpFrame[] = [];
    after.on('challenged', () => events.push('challenged'));
    after.on('registered', (welcome: { new?: boolean }) => events.push(welcome.new ? 'registered new' : 'registered'));
    after.on('notification', (frame: UdpFrame) => frames.push(frame));
    try {
      await after.start();
      expect(events).toEqual(['challenged', 'registered new']);
      const conversation = (await alice.client.createConversation([bob.userid])).conversation as { id: string };
      await alice.client.addMessage(conversation.id, 'after-the-move', 'aGk=');
      await waitFor(() => frames.some((f) => f.kind === 'message'), 5000, 'the message at the new address');
      await waitFor(async () => (await metric(server, 'herald_udp_pending')) === 0, 5000, 'every push acknowledged');
      expect(before.frames.some((f) => f.kind === 'message' && f.conversationid === conversation.id)).toBe(false);
    } finally {
      await before.receiver.close();
      await after.close();
    }
  });
});
