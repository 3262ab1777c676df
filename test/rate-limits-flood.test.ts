import http from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, metricsText, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { ozekiTime } from '../client/ozeki.ts';

/** The station limit of this file: bursts of 40 calls, then 20 a second. */
const STATION_BURST = 40;
const STATION_PER_SECOND = 20;
const FLOOD = 2000;
const FLOOD_CONCURRENCY = 8;
const BOB_CALLS_AT_LEAST = 100;

interface Answer {
  status: number;
  retryAfter: string | null;
  body: { status: string; errormessage: string };
}

/** Ozeki calls over a keep-alive pool of its own, as a misbehaving client floods. */
function floodClient(baseUrl: string, station: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: FLOOD_CONCURRENCY });
  const post = (body: string) =>
    new Promise<Answer>((resolve, reject) => {
      const request = http.request(
        `${baseUrl}/?srv=chatserver&api=chatconversation`,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'ozeki-station': station },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', reject);
          response.on('end', () =>
            resolve({
              status: response.statusCode ?? 0,
              retryAfter: (response.headers['retry-after'] as string | undefined) ?? null,
              body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
            }),
          );
        },
      );
      request.on('error', reject);
      request.end(body);
    });
  return { post, close: () => agent.destroy() };
}

function addBody(conversationid: string, id: string): string {
  const now = ozekiTime();
  return JSON.stringify({
    clientversioncode: 3,
    timestamp: now,
    action: 'add',
    conversationid,
    instance: '',
    message: JSON.stringify({ ID: id, Type: 'Message', Created: now, ValidUntil: '', Data: 'ZGF0YQ==' }),
  });
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function messagesIn(server: TestServer, conversationId: string): Promise<number> {
  const row = await server.app.parts.store.db
    .selectFrom('messages')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('conversation_id', '=', conversationId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describeEachStore('a flood from one station is limited while other users are served', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let aliceConversation: string;
  let bobConversation: string;
  let flood: ReturnType<typeof floodClient> | undefined;

  beforeAll(async () => {
    server = await startTestServer(kind, { HERALD_LIMIT_STATION: `${STATION_BURST}/${STATION_BURST / STATION_PER_SECOND}s` });
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    const carol = await addUser(server, 'Carol');
    aliceConversation = ((await alice.client.createConversation([carol.userid])).conversation as { id: string }).id;
    bobConversation = ((await bob.client.createConversation([carol.userid])).conversation as { id: string }).id;
  });
  afterAll(async () => {
    flood?.close();
    await server?.stop();
  });

  it(`Alice's ${FLOOD} calls are mostly refused with 429 while Bob's keep a p99 under 50 ms`, async () => {
    flood = floodClient(server.http, alice.client.station);
    const storedBefore = await messagesIn(server, aliceConversation);
    const answers: Answer[] = [];
    let next = 0;
    const started = performance.now();
    const floodWorker = async () => {
      while (next < FLOOD) answers.push(await flood!.post(addBody(aliceConversation, `flood-${next++}`)));
    };
    let flooding = true;
    const floodDone = Promise.all(Array.from({ length: FLOOD_CONCURRENCY }, floodWorker)).finally(() => (flooding = false));

    // Bob, another user on another station, calls one at a time for as long as the flood lasts.
    const bobLatencies: number[] = [];
    const bobStatuses = new Set<number>();
    while (flooding || bobLatencies.length < BOB_CALLS_AT_LEAST) {
      const t0 = performance.now();
      const { httpStatus } = await bob.client.call(
        'chatconversation',
        JSON.parse(addBody(bobConversation, `bob-${bobLatencies.length}`)) as Record<string, unknown>,
      );
      bobLatencies.push(performance.now() - t0);
      bobStatuses.add(httpStatus);
    }
    await floodDone;
    const floodSeconds = (performance.now() - started) / 1000;

    const accepted = answers.filter((a) => a.status === 200);
    const limited = answers.filter((a) => a.status === 429);
    expect(accepted.length + limited.length).toBe(FLOOD);
    // What the bucket allows over the flood's duration, with a little room for timing.
    expect(accepted.length).toBeLessThanOrEqual(STATION_BURST + Math.ceil(STATION_PER_SECOND * floodSeconds) + 5);
    expect(limited.length).toBeGreaterThan(FLOOD / 2);
    for (const answer of limited) {
      expect(answer.body).toEqual({
        status: 'ERROR',
        errormessage: expect.stringMatching(/^rate limited: too many calls from this station/),
      });
      expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    // Nothing refused was stored, nothing accepted was lost.
    expect((await messagesIn(server, aliceConversation)) - storedBefore).toBe(accepted.length);

    expect([...bobStatuses]).toEqual([200]);
    const p99 = percentile(bobLatencies, 99);
    console.info(
      `flood ${FLOOD} in ${floodSeconds.toFixed(2)} s: ${accepted.length} taken, ${limited.length} limited; Bob ${bobLatencies.length} calls, p50 ${percentile(bobLatencies, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`,
    );
    expect(p99).toBeLessThan(50);

    expect(await metricsText(server)).toContain(`herald_rate_limited_total{limit="station"} ${limited.length}`);
  }, 30_000);

  it('a limited station is served again within its Retry-After', async () => {
    let refused: Answer | undefined;
    for (let i = 0; i < 3 * STATION_BURST && !refused; i++) {
      const answer = await flood!.post(addBody(aliceConversation, `drain-${i}`));
      if (answer.status === 429) refused = answer;
    }
    expect(refused).toBeDefined();
    const retryAfterMs = Number(refused!.retryAfter) * 1000;
    let attempt = 0;
    // Polled, not slept: taken as soon as a token is back, which Retry-After promised.
    await waitFor(
      async () => (await flood!.post(addBody(aliceConversation, `after-${attempt++}`))).status === 200,
      retryAfterMs + 500,
      'a call taken again',
    );
  });
});
