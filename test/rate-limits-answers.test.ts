import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';
import { requestFrom } from './helpers/from-address.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { rawSocket, udpCredentials, udpPort, waitForMetric } from './helpers/udp.ts';
import { CounterClock, encodeDatagram, helloPayload, secretBytes } from '../client/udp-protocol.ts';
import { ozekiTime } from '../client/ozeki.ts';

/** herald_rate_limited_total{limit}, read from the node's registry (an HTTP scrape would pay the address limit). */
async function limitedCount(server: TestServer, limit: string): Promise<number> {
  const { values } = await server.app.parts.metrics.rateLimited.get();
  return values.find((value) => value.labels.limit === limit)?.value ?? 0;
}

describeEachStore('a call over the address limit is answered 429 in its API own shape and changes nothing', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let conversationId: string;

  beforeAll(async () => {
    // Three calls a minute from one address.
    server = await startTestServer(kind, { HERALD_LIMIT_IP: '3/60s' });
    // Set up from 127.0.0.1 before its three calls are spent; each case below has an address of its own.
    alice = await addUser(server, 'Alice');
    const bob = await addUser(server, 'Bob');
    conversationId = ((await alice.client.createConversation([bob.userid])).conversation as { id: string }).id;
  });
  afterAll(async () => server?.stop());

  /** Three calls from `address` pass the address limit; the fourth is refused: its answer. */
  async function fourthCall(address: string, path: string, options: Parameters<typeof requestFrom>[2]) {
    for (let i = 0; i < 3; i++) expect((await requestFrom(address, `${server.http}${path}`, options)).status).not.toBe(429);
    const before = await snapshot(server.app.parts.store);
    const answer = await requestFrom(address, `${server.http}${path}`, options);
    expect(answer.status).toBe(429);
    const retryAfter = Number(answer.headers['retry-after']);
    // 3 a minute: the next token comes in 20 s.
    expect(retryAfter).toBeGreaterThanOrEqual(19);
    expect(retryAfter).toBeLessThanOrEqual(20);
    expect(await snapshot(server.app.parts.store)).toEqual(before);
    return answer;
  }

  it('Ozeki: status ERROR with the errormessage, and the message is not added', async () => {
    const add = (id: string) => ({
      headers: { 'ozeki-station': alice.client.station },
      body: {
        clientversioncode: 3,
        timestamp: ozekiTime(),
        action: 'add',
        conversationid: conversationId,
        instance: '',
        message: JSON.stringify({ ID: id, Type: 'Message', Created: ozekiTime(), ValidUntil: '', Data: 'ZGF0YQ==' }),
      },
    });
    const answer = await fourthCall('127.0.0.11', '/?srv=chatserver&api=chatconversation', add('same-id'));
    expect(answer.json).toEqual({
      status: 'ERROR',
      errormessage: expect.stringMatching(/^rate limited: too many requests from this address; try again in \d+ s$/),
    });
  });

  it('Web3MQ: code 429 and msg', async () => {
    const answer = await fourthCall('127.0.0.12', '/api/get_user_info/', {
      body: { did_type: 'eth', did_value: '0x0', timestamp: Date.now() },
    });
    expect(answer.json).toEqual({ code: 429, msg: expect.stringMatching(/^rate limited: too many requests/) });
  });

  it('/v1: error', async () => {
    const answer = await fourthCall('127.0.0.13', '/v1/users', { method: 'GET', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(answer.json).toEqual({ error: expect.stringMatching(/^rate limited: too many requests/) });
  });

  it('Matrix: M_LIMIT_EXCEEDED with retry_after_ms', async () => {
    const answer = await fourthCall('127.0.0.14', '/_matrix/push/v1/notify', { body: { notification: { devices: [] } } });
    expect(answer.json).toEqual({
      errcode: 'M_LIMIT_EXCEEDED',
      error: expect.stringMatching(/^rate limited: too many requests/),
      retry_after_ms: expect.any(Number),
    });
    expect(answer.json.retry_after_ms).toBeGreaterThan(19_000);
    expect(await limitedCount(server, 'ip')).toBe(4);
  });
});

describeEachStore('live handshakes over their limits are refused', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  const receivers: RecordingReceiver[] = [];

  beforeAll(async () => {
    // Two live connections a minute per station, two UDP hellos a minute per address.
    server = await startTestServer(kind, { HERALD_LIMIT_LIVE_STATION: '2/60s', HERALD_LIMIT_UDP: '2/60s' });
    alice = await addUser(server, 'Alice');
  });
  afterAll(async () => {
    for (const { receiver } of receivers) receiver.close();
    await server?.stop();
  });

  it('WebSocket: a station that opens its third connection within a minute is closed with 4429', async () => {
    for (let i = 0; i < 2; i++) receivers.push(await connectDevice(server, alice.client.station));
    const socket = new WebSocket(server.app.endpoints.ws, { headers: { 'ozeki-station': alice.client.station } });
    const closed = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
      socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      socket.on('error', reject);
    });
    expect(closed.code).toBe(4429);
    expect(closed.reason).toMatch(/^rate limited: too many live connections opened by this station; try again in \d+ s$/);
    // The two accepted connections stay.
    const open = [...(server.app.parts.hub.connectionsOf(alice.userid) ?? [])].filter((c) => c.channel === 'ws');
    expect(open).toHaveLength(2);
    expect(await limitedCount(server, 'live_station')).toBe(1);
  });

  it('UDP: a third hello from one address within a minute is dropped and counted', async () => {
    const credentials = await udpCredentials(alice);
    const raw = await rawSocket();
    try {
      const clock = new CounterClock();
      const hello = () =>
        encodeDatagram(secretBytes(credentials.secret), {
          type: 'hello',
          station: credentials.station,
          counter: clock.next(),
          payload: helloPayload(),
        });
      for (let i = 0; i < 3; i++) raw.socket.send(hello(), udpPort(credentials.endpoint), '127.0.0.1');
      await waitForMetric(server, 'herald_udp_datagrams_dropped_total', 'reason="rate_limited"', 1);
      expect(await limitedCount(server, 'udp')).toBe(1);
      // Two challenges, and nothing for the third.
      await waitFor(() => raw.received.length >= 2, 5000, 'two challenges');
      expect(raw.received).toHaveLength(2);
    } finally {
      await raw.close();
    }
  });
});
