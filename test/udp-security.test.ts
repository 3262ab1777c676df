import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, befriend, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { hasUdpEndpoint, listen, metric, proveAddress, rawSocket, udpCredentials, udpPort, waitForMetric } from './helpers/udp.ts';
import { CounterClock, DatagramType, encodeDatagram, encodeRaw, helloPayload, openDatagram, secretBytes } from '../client/udp-protocol.ts';

const DROPPED = 'herald_udp_datagrams_dropped_total';

describeEachStore('UDP datagrams that prove nothing are refused', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let mallory: TestUser;
  let port: number;
  const clock = new CounterClock();

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob', 'windows');
    mallory = await addUser(server, 'Mallory', 'windows');
    await befriend(server, alice, bob);
    port = udpPort((await udpCredentials(bob)).endpoint);
  });
  afterAll(async () => server?.stop());

  const dropped = (reason: string) => metric(server, DROPPED, `reason="${reason}"`);

  it('a hello signed with the wrong key is refused, counted, and binds nothing', async () => {
    const before = await dropped('bad_mac');
    const raw = await rawSocket();
    try {
      const forged = encodeDatagram(randomBytes(32), {
        type: 'hello',
        station: bob.client.station,
        counter: clock.next(),
        payload: {},
      });
      raw.socket.send(forged, port, '127.0.0.1');
      await waitForMetric(server, DROPPED, 'reason="bad_mac"', before + 1);
      expect(hasUdpEndpoint(server, bob)).toBe(false);
      expect(raw.received).toHaveLength(0);
    } finally {
      await raw.close();
    }
  });

  it('a replayed hello or ack is refused, even from the address that first sent it', async () => {
    const credentials = await udpCredentials(bob);
    const key = secretBytes(credentials.secret);
    const device = await rawSocket();
    const eavesdropper = await rawSocket();
    try {
      const { echo, challenge, welcome } = await proveAddress(device, credentials, clock);
      expect(challenge.type).toBe('challenge');
      expect(welcome.type).toBe('welcome');

      const before = await dropped('replayed');
      device.socket.send(echo, port, '127.0.0.1');
      eavesdropper.socket.send(echo, port, '127.0.0.1');
      const ack = encodeDatagram(key, { type: 'ack', station: credentials.station, counter: clock.next(), payload: { seq: 1 } });
      device.socket.send(ack, port, '127.0.0.1');
      device.socket.send(ack, port, '127.0.0.1');
      await waitForMetric(server, DROPPED, 'reason="replayed"', before + 3);
      // Only the genuine hellos were answered, and the eavesdropper never got anything.
      expect(device.received).toHaveLength(2);
      expect(eavesdropper.received).toHaveLength(0);
    } finally {
      await device.close();
      await eavesdropper.close();
    }
  });

  it("Mallory's hello for Bob's station is refused and Bob's pushes still go to Bob", async () => {
    const { receiver, frames } = await listen(bob);
    const attacker = await rawSocket();
    try {
      const mallorys = await udpCredentials(mallory);
      const before = await dropped('bad_mac');
      const hijack = encodeDatagram(secretBytes(mallorys.secret), {
        type: 'hello',
        station: bob.client.station,
        counter: clock.next(),
        payload: {},
      });
      attacker.socket.send(hijack, port, '127.0.0.1');
      await waitForMetric(server, DROPPED, 'reason="bad_mac"', before + 1);

      const conversation = (await alice.client.createConversation([bob.userid])).conversation as { id: string };
      await alice.client.addMessage(conversation.id, 'for-bob-only', 'c2VjcmV0');
      await waitFor(() => frames.some((f) => f.kind === 'message'), 5000, "Alice's message at Bob's socket");
      await waitFor(async () => (await metric(server, 'herald_udp_pending')) === 0, 5000, 'every push acknowledged');
      expect(attacker.received).toHaveLength(0);
    } finally {
      await receiver.close();
      await attacker.close();
    }
  });

  it('garbage, oversized, stale, wrong-direction and unknown-station datagrams are counted and the server keeps serving', async () => {
    const { secret, station } = await udpCredentials(bob);
    const key = secretBytes(secret);
    const reasons = ['malformed', 'oversized', 'stale', 'wrong_direction', 'unknown_station'];
    const before = Object.fromEntries(await Promise.all(reasons.map(async (r) => [r, await dropped(r)] as const)));
    const raw = await rawSocket();
    try {
      const send = (bytes: Buffer) => raw.socket.send(bytes, port, '127.0.0.1');
      send(randomBytes(5));
      send(Buffer.from('{"type":"hello"}'));
      send(randomBytes(1500));
      // Ten minutes old: outside the counter's clock window, though correctly signed.
      send(encodeDatagram(key, { type: 'hello', station, counter: BigInt(Date.now() - 600_000) * 1000n, payload: {} }));
      // A server-to-client type sent to the server.
      send(encodeRaw(key, DatagramType.push, station, clock.next(), Buffer.from('{"seq":1}')));
      send(encodeDatagram(randomBytes(32), { type: 'hello', station: newStation(), counter: clock.next(), payload: {} }));
      // Signed, but the payload is not JSON.
      send(encodeRaw(key, DatagramType.ack, station, clock.next(), Buffer.from('not json')));

      await waitForMetric(server, DROPPED, 'reason="malformed"', before.malformed + 3);
      await waitForMetric(server, DROPPED, 'reason="oversized"', before.oversized + 1);
      await waitForMetric(server, DROPPED, 'reason="stale"', before.stale + 1);
      await waitForMetric(server, DROPPED, 'reason="wrong_direction"', before.wrong_direction + 1);
      await waitForMetric(server, DROPPED, 'reason="unknown_station"', before.unknown_station + 1);
      expect(raw.received).toHaveLength(0);

      const { receiver } = await listen(bob);
      await receiver.close();
    } finally {
      await raw.close();
    }
  });

  it('a device removed halfway through proving its address is refused at its next datagram', async () => {
    const erin = await addUser(server, 'Erin', 'windows');
    const credentials = await udpCredentials(erin);
    const key = secretBytes(credentials.secret);
    const raw = await rawSocket();
    try {
      raw.socket.send(
        encodeDatagram(key, { type: 'hello', station: credentials.station, counter: clock.next(), payload: helloPayload() }),
        port,
        '127.0.0.1',
      );
      const challenge = openDatagram(key, await waitFor(() => raw.received[0], 5000, 'the challenge'));
      const removed = await fetch(`${server.http}/v1/users/${erin.userid}/devices/${credentials.station}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(removed.status).toBe(204);

      const before = await dropped('unknown_station');
      const echo = {
        type: 'hello' as const,
        station: credentials.station,
        counter: clock.next(),
        payload: helloPayload(challenge.payload.cookie as string),
      };
      raw.socket.send(encodeDatagram(key, echo), port, '127.0.0.1');
      await waitForMetric(server, DROPPED, 'reason="unknown_station"', before + 1);
      expect(raw.received).toHaveLength(1);
      expect(server.app.parts.hub.connectionsOf(erin.userid)).toBeUndefined();
    } finally {
      await raw.close();
    }
  });
});
