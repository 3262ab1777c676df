import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeEachStore, SQLITE } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, newStation, startTestServer, waitFor, type TestServer } from './helpers/server.ts';
import { addPushDevice, startPushScene, type PushScene } from './helpers/push.ts';
import { connectDevice } from './helpers/websocket.ts';
import { apnsToken } from './mocks/push-env.ts';

/*
 * The /v1 calls the admin console reads: GET /v1/stats, the user search, a device's test
 * push and the live tail of notifications. Each with the admin token, with a scoped token,
 * and refused without one.
 */

interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
}

function client(base: () => string) {
  return async <T = Record<string, unknown>>(method: string, path: string, token?: string, body?: unknown): Promise<Answer<T>> => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${base()}/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as T };
  };
}

async function makeToken(server: TestServer, scopes: string[]): Promise<string> {
  const call = client(() => server.http);
  const made = await call<{ token: string }>('POST', '/tokens', ADMIN_TOKEN, { name: `console-${scopes.join('-')}`, scopes });
  expect(made.status).toBe(201);
  return made.body.token;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

interface Stats {
  connections: { websocket: number; udp: number; web3mq: number };
  outbox: Record<'apns' | 'fcm' | 'webpush', { pending: number; retrying: number; held: number; dead: number }>;
  series: { start: number; stepSeconds: number } & Record<'notifications' | 'delivered' | 'retried' | 'dead' | 'failed', number[]>;
}

/**
 * A live tail, read with node:http on a connection of its own (fetch() would pool it, and a
 * pooled client may open a spare connection that holds a server's close up to its keep-alive).
 */
async function openTail(server: TestServer, token: string) {
  const events: Array<Record<string, unknown>> = [];
  let comments = 0;
  let ended = false;
  let body = '';
  const request = http.get(`${server.http}/v1/notifications/tail`, { headers: { authorization: `Bearer ${token}` }, agent: false });
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => request.on('response', resolve).on('error', reject));
  response.setEncoding('utf8');
  let buffered = '';
  response.on('data', (chunk: string) => {
    if (response.statusCode !== 200) return void (body += chunk);
    buffered += chunk;
    let cut: number;
    while ((cut = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, cut);
      buffered = buffered.slice(cut + 2);
      if (block.startsWith(':')) comments++;
      else if (block.startsWith('data: ')) events.push(JSON.parse(block.slice(6)) as Record<string, unknown>);
    }
  });
  const done = new Promise<void>((resolve) => response.on('close', () => resolve()));
  void done.then(() => (ended = true));
  if (response.statusCode !== 200) await done;
  return {
    status: response.statusCode,
    headers: response.headers,
    /** The refusal's `error`, for an answer other than 200. */
    get error() {
      return body === '' ? undefined : (JSON.parse(body) as { error: string }).error;
    },
    events,
    get comments() {
      return comments;
    },
    get ended() {
      return ended;
    },
    close() {
      request.destroy();
    },
  };
}

describeEachStore('the console API: stats, user search, test push', (kind) => {
  let scene: PushScene;
  const call = client(() => scene.server.http);
  let reader: string;
  let statsReader: string;
  let deviceWriter: string;

  beforeAll(async () => {
    scene = await startPushScene(kind, { HERALD_PUSH_HOLD_S: '0' });
    reader = await makeToken(scene.server, ['users:read']);
    statsReader = await makeToken(scene.server, ['stats:read']);
    deviceWriter = await makeToken(scene.server, ['devices:write']);
  }, 60_000);
  afterAll(async () => {
    scene?.doubles.apns.release();
    await scene?.stop();
  });

  it('GET /v1/stats is refused without a credential (401) and with a token lacking stats:read (403)', async () => {
    const none = await call('GET', '/stats');
    expect(none.status).toBe(401);
    expect(none.body.error).toMatch(/Bearer/);
    const wrong = await call('GET', '/stats', reader);
    expect(wrong.status).toBe(403);
    expect(wrong.body.error).toContain('stats:read');
  });

  it("counts this node's WebSocket connections, its notifications and each push outcome, and the outbox backlog", async () => {
    const { server, bob, doubles } = scene;
    const good = apnsToken();
    const gone = apnsToken();
    const busy = apnsToken();
    await addPushDevice(server, bob, 'ios', good);
    await addPushDevice(server, bob, 'ios', gone);
    await addPushDevice(server, bob, 'ios', busy);
    doubles.apns.unregister(gone);
    doubles.apns.failNext({ status: 503, reason: 'ServiceUnavailable', token: busy, retryAfter: 3600 });
    const live = await connectDevice(server, bob.client.station);
    try {
      const before = (await call<Stats>('GET', '/stats', ADMIN_TOKEN)).body;
      expect(before.connections).toEqual({ websocket: 1, udp: 0, web3mq: 0 });
      expect(before.series.stepSeconds).toBe(60);
      for (const series of ['notifications', 'delivered', 'retried', 'dead', 'failed'] as const)
        expect(before.series[series]).toHaveLength(60);

      const sent = await call('POST', '/notifications', ADMIN_TOKEN, { to: [bob.email], title: 'Invoice 7 from Acme' });
      expect(sent.status).toBe(202);
      await waitFor(() => doubles.apns.pushesTo(good).length === 1, 10_000, 'the push to the good token');
      const after = await waitFor(
        async () => {
          const stats = (await call<Stats>('GET', '/stats', statsReader)).body;
          return stats.outbox.apns.dead === 1 && stats.outbox.apns.retrying === 1 && sum(stats.series.delivered) === 1 && stats;
        },
        10_000,
        'the three answers in the stats',
      );
      expect(sum(after.series.notifications) - sum(before.series.notifications)).toBe(1);
      expect(sum(after.series.retried)).toBe(1);
      expect(sum(after.series.dead)).toBe(1);
      expect(after.outbox.apns).toEqual({ pending: 0, retrying: 1, held: 0, dead: 1 });
      expect(after.outbox.fcm).toEqual({ pending: 0, retrying: 0, held: 0, dead: 0 });
      expect(after.series.start).toBeLessThanOrEqual(Date.now() - 59 * 60_000);

      // Pushes the provider has not answered yet are pending.
      doubles.apns.hold();
      await call('POST', '/notifications', ADMIN_TOKEN, { to: [bob.email], title: 'Invoice 8 from Acme' });
      await waitFor(() => doubles.apns.held() === 2, 10_000, 'two pushes parked at the double');
      const waiting = (await call<Stats>('GET', '/stats', ADMIN_TOKEN)).body;
      expect(waiting.outbox.apns).toMatchObject({ pending: 2, retrying: 1, dead: 1 });
      doubles.apns.release();
      await waitFor(
        async () => (await call<Stats>('GET', '/stats', ADMIN_TOKEN)).body.outbox.apns.pending === 0,
        10_000,
        'an empty outbox',
      );
    } finally {
      doubles.apns.release();
      live.receiver.close();
    }
    await waitFor(async () => (await call<Stats>('GET', '/stats', ADMIN_TOKEN)).body.connections.websocket === 0, 5000, 'no connection');
  });

  it('searches users by e-mail, name or nick in any case, a page at a time', async () => {
    const { server } = scene;
    const alison = await addUser(server, 'Alison');
    const malik = await addUser(server, 'Malik');
    await addUser(server, 'Zoe');
    const found = await call<{ users: Array<{ userid: string }>; next: string | null }>('GET', '/users?search=ALI', reader);
    expect(found.status).toBe(200);
    // Alice (the scene's), Alison and Malik; not Zoe or Bob.
    const ids = found.body.users.map((u) => u.userid);
    expect(ids).toEqual([scene.alice.userid, alison.userid, malik.userid]);
    expect(found.body.next).toBeNull();

    const first = await call<{ users: Array<{ userid: string }>; next: string | null }>('GET', '/users?search=ali&limit=2', ADMIN_TOKEN);
    expect(first.body.users.map((u) => u.userid)).toEqual([scene.alice.userid, alison.userid]);
    expect(first.body.next).toEqual(expect.any(String));
    const second = await call<{ users: Array<{ userid: string }>; next: string | null }>(
      'GET',
      `/users?search=ali&limit=2&after=${encodeURIComponent(first.body.next!)}`,
      ADMIN_TOKEN,
    );
    expect(second.body).toEqual({ users: [expect.objectContaining({ userid: malik.userid })], next: null });

    // LIKE's wildcards are searched for as themselves.
    expect((await call<{ users: unknown[] }>('GET', '/users?search=%25', ADMIN_TOKEN)).body.users).toEqual([]);
    expect((await call<{ users: unknown[] }>('GET', '/users?search=_', ADMIN_TOKEN)).body.users).toEqual([]);
    const byMail = await call<{ users: Array<{ userid: string }> }>(
      'GET',
      `/users?search=${encodeURIComponent(malik.email.toUpperCase())}`,
      reader,
    );
    expect(byMail.body.users.map((u) => u.userid)).toEqual([malik.userid]);
  });

  it('refuses a bad cursor or limit with 400, and a search without users:read with 401/403', async () => {
    const bad = await call('GET', '/users?after=yesterday', ADMIN_TOKEN);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/after/);
    const limit = await call('GET', '/users?limit=0', ADMIN_TOKEN);
    expect(limit.status).toBe(400);
    expect(limit.body.error).toMatch(/limit/);
    expect((await call('GET', '/users?search=bob')).status).toBe(401);
    expect((await call('GET', '/users?search=bob', statsReader)).status).toBe(403);
  });

  it("sends a test push to one of Bob's devices and answers with the provider's answer", async () => {
    const { server, bob, doubles } = scene;
    const token = apnsToken();
    const phone = await addPushDevice(server, bob, 'ios', token);
    const pushed = await call<{ station: string; provider: string; outcome: { kind: string; detail: string } }>(
      'POST',
      `/users/${bob.userid}/devices/${phone.station}/test-push`,
      deviceWriter,
    );
    expect(pushed.status).toBe(200);
    expect(pushed.body).toMatchObject({ station: phone.station, provider: 'apns', outcome: { kind: 'delivered' } });
    const [push] = doubles.apns.pushesTo(token);
    expect(pushed.body.outcome.detail).toBe(`200 apns-id ${push.apnsId}`);
    expect(push.payload.aps.alert.title).toBe('Herald test push');

    const gone = apnsToken();
    const old = await addPushDevice(server, bob, 'ios', gone);
    doubles.apns.unregister(gone);
    const dead = await call<{ outcome: { kind: string; reason: string } }>(
      'POST',
      `/users/${bob.email}/devices/${old.station}/test-push`,
      ADMIN_TOKEN,
    );
    expect(dead.status).toBe(200);
    expect(dead.body.outcome.kind).toBe('dead');
    expect(dead.body.outcome.reason).toContain('410 Unregistered');
  });

  it('refuses a test push to a device without a push token, of another user, or without devices:write', async () => {
    const { bob, alice } = scene;
    const tokenless = await call('POST', `/users/${bob.userid}/devices/${bob.client.station}/test-push`, ADMIN_TOKEN);
    expect(tokenless.status).toBe(400);
    expect(tokenless.body.error).toContain('has no push token');
    const notHers = await call('POST', `/users/${alice.userid}/devices/${bob.client.station}/test-push`, ADMIN_TOKEN);
    expect(notHers.status).toBe(404);
    const unknown = await call('POST', `/users/${bob.userid}/devices/${newStation()}/test-push`, ADMIN_TOKEN);
    expect(unknown.status).toBe(404);
    const badStation = await call('POST', `/users/${bob.userid}/devices/nope/test-push`, ADMIN_TOKEN);
    expect(badStation.status).toBe(400);
    expect((await call('POST', `/users/${bob.userid}/devices/${bob.client.station}/test-push`)).status).toBe(401);
    const reading = await call('POST', `/users/${bob.userid}/devices/${bob.client.station}/test-push`, reader);
    expect(reading.status).toBe(403);
    expect(reading.body.error).toContain('devices:write');
  });
});

describe('the console API without push providers', () => {
  let server: TestServer;
  const call = client(() => server.http);
  beforeAll(async () => {
    server = await startTestServer(SQLITE);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('says that APNs is not configured when a test push needs it', async () => {
    const bob = await addUser(server, 'Bob', 'ios');
    const station = newStation();
    const put = await call('PUT', `/users/${bob.userid}/devices/${station}`, ADMIN_TOKEN, { platform: 'ios', pushtoken: apnsToken() });
    expect(put.status).toBe(200);
    const answer = await call('POST', `/users/${bob.userid}/devices/${station}/test-push`, ADMIN_TOKEN);
    expect(answer.status).toBe(400);
    expect(answer.body.error).toContain('APNs is not configured');
  });
});

describe('the live tail of notifications (GET /v1/notifications/tail)', () => {
  let server: TestServer;
  const call = client(() => server.http);
  const tails: Array<{ close(): void }> = [];
  beforeAll(async () => {
    server = await startTestServer(SQLITE);
  });
  afterEach(() => {
    for (const tail of tails.splice(0)) tail.close();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('streams every committed notification as a Server-Sent Event, to the admin and to a feed:read token', async () => {
    const carol = await addUser(server, 'Carol');
    const feedReader = await makeToken(server, ['feed:read']);
    const admin = await openTail(server, ADMIN_TOKEN);
    const scoped = await openTail(server, feedReader);
    tails.push(admin, scoped);
    for (const tail of [admin, scoped]) {
      expect(tail.status).toBe(200);
      expect(tail.headers['content-type']).toMatch(/^text\/event-stream/);
    }
    const sent = await call<{ notifications: Array<{ id: string; seq: number }> }>('POST', '/notifications', ADMIN_TOKEN, {
      to: [carol.email],
      title: 'Parcel 12 is on its way',
      body: 'not shown in the tail',
      conversationid: 'parcels',
    });
    expect(sent.status).toBe(202);
    const [note] = sent.body.notifications;
    for (const tail of [admin, scoped]) {
      await waitFor(() => tail.events.some((e) => e.id === note.id), 5000, 'the notification in the tail');
      const event = tail.events.find((e) => e.id === note.id)!;
      expect(event).toEqual({
        userid: carol.userid,
        seq: note.seq,
        id: note.id,
        type: 'message',
        title: 'Parcel 12 is on its way',
        conversationid: 'parcels',
        badge: 1,
        silent: false,
        created: expect.any(Number),
      });
    }
  });

  it('refuses a tail without a credential (401) or without feed:read (403)', async () => {
    expect((await call('GET', '/notifications/tail')).status).toBe(401);
    const sender = await makeToken(server, ['notifications:send']);
    const refused = await call('GET', '/notifications/tail', sender);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toContain('feed:read');
  });

  it('keeps at most 10 tails open on a node; a closed one makes room', async () => {
    for (let i = 0; i < 10; i++) {
      const tail = await openTail(server, ADMIN_TOKEN);
      tails.push(tail);
      expect(tail.status).toBe(200);
    }
    const refused = await call('GET', '/notifications/tail', ADMIN_TOKEN);
    expect(refused.status).toBe(429);
    expect(refused.body.error).toContain('at most 10 live tails');
    tails[0].close();
    const again = await waitFor(
      async () => {
        const tail = await openTail(server, ADMIN_TOKEN);
        tails.push(tail);
        return tail.status === 200;
      },
      5000,
      'room for a new tail',
    );
    expect(again).toBe(true);
  });

  it('ends open tails when the node stops, without holding the stop up', async () => {
    const stopping = await startTestServer(SQLITE);
    let tail: Awaited<ReturnType<typeof openTail>> | undefined;
    try {
      tail = await openTail(stopping, ADMIN_TOKEN);
      expect(tail.status).toBe(200);
      await waitFor(() => tail!.comments > 0, 5000, 'the opening comment');
      const started = Date.now();
      await Promise.race([
        stopping.stop(),
        new Promise((_resolve, reject) => setTimeout(() => reject(new Error('stop() hung on an open tail')), 10_000)),
      ]);
      expect(Date.now() - started).toBeLessThan(10_000);
      await waitFor(() => tail!.ended, 5000, 'the tail to end');
    } finally {
      tail?.close();
      await stopping.stop();
    }
  });
});
