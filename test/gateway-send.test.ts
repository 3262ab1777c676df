import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { OzekiClient } from '../client/ozeki.ts';
import {
  ADMIN_TOKEN,
  addUser,
  metricsText,
  newStation,
  startTestServer,
  waitFor,
  type TestServer,
  type TestUser,
} from './helpers/server.ts';
import { addPushDevice } from './helpers/push.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { snapshot } from './helpers/snapshot.ts';
import { TestBrowser } from './helpers/webpush-browser.ts';
import { apnsToken, startPushDoubles, type PushDoubles } from './mocks/push-env.ts';
import { startWebPushMock, type WebPushMock } from './mocks/webpush.ts';
import { userKeyOf } from '../src/notify/feed.ts';

interface SendAnswer {
  notifications: Array<{ to: string; userid: string; id: string; seq: number }>;
  unknown: string[];
}

describeEachStore('the gateway API: another backend sends through Herald', (kind) => {
  let doubles: PushDoubles;
  let pushService: WebPushMock;
  let server: TestServer;
  let bob: TestUser;
  let carol: TestUser;
  let live: RecordingReceiver;
  let endpoint: string;
  let caFile: string | undefined;
  const iphone = apnsToken();
  const browser = new TestBrowser();
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

  /** The backend's credential: a token that may send and read feeds, nothing else. */
  let backend: Record<string, string>;
  let reader: Record<string, string>;
  const send = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${server.http}/v1/notifications`, { method: 'POST', headers: { ...backend, ...headers }, body: JSON.stringify(body) });
  const makeToken = async (scopes: string[]) => {
    const response = await fetch(`${server.http}/v1/tokens`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'billing', scopes }),
    });
    expect(response.status).toBe(201);
    return { authorization: `Bearer ${((await response.json()) as { token: string }).token}`, 'content-type': 'application/json' };
  };
  const feed = async (user: string, query = '', headers: Record<string, string> = backend) =>
    fetch(`${server.http}/v1/users/${encodeURIComponent(user)}/notifications${query}`, { headers });
  const read = (user: string, body: unknown, headers: Record<string, string> = backend) =>
    fetch(`${server.http}/v1/users/${encodeURIComponent(user)}/notifications/read`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
    });
  const feedRows = async (userId: string) =>
    Number(
      (
        await server.app.parts.store.db
          .selectFrom('notifications')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('user_key', '=', userKeyOf(userId))
          .executeTakeFirstOrThrow()
      ).n,
    );

  beforeAll(async () => {
    doubles = await startPushDoubles();
    pushService = await startWebPushMock();
    // One file of trusted certificates for both doubles.
    caFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'herald-gateway-')), 'ca.pem');
    fs.writeFileSync(caFile, fs.readFileSync(doubles.env.HERALD_CA_FILE, 'utf8') + fs.readFileSync(pushService.env.HERALD_CA_FILE, 'utf8'));
    // Bob's live device acknowledges everything, so the presence-aware hold would keep his
    // phone's pushes back (test/push-presence-hold.test.ts): off here, where pushes are checked.
    server = await startTestServer(kind, { ...doubles.env, ...pushService.env, HERALD_CA_FILE: caFile, HERALD_PUSH_HOLD_S: '0' });
    bob = await addUser(server, 'Bob', 'windows');
    carol = await addUser(server, 'Carol', 'windows');
    live = await connectDevice(server, bob.client.station);
    backend = await makeToken(['notifications:send', 'feed:read']);
    reader = await makeToken(['feed:read']);
    await addPushDevice(server, bob, 'ios', iphone);
    // Bob's browser: a station of his with a Web Push subscription.
    const tab = { client: new OzekiClient(server.http, newStation()) };
    const login = await tab.client.login(bob.apikey, 'browser');
    endpoint = pushService.subscribe(login.vapidpublickey as string);
    await tab.client.ok('chatdevice', { action: 'register', platform: 'browser', pushsubscription: browser.subscription(endpoint) });
  });
  afterAll(async () => {
    live?.receiver.close();
    await server?.stop();
    await doubles?.close();
    await pushService?.close();
    if (caFile) fs.rmSync(path.dirname(caFile), { recursive: true, force: true });
  });

  it('reaches every device of the recipient once; a retry with the same Idempotency-Key creates nothing', async () => {
    const request = {
      to: [bob.email, 'nobody@example.org', bob.userid],
      title: 'Invoice 42 from Acme',
      body: 'Due on Friday',
      kind: 'app.invoice',
      conversationid: 'invoices',
      data: { invoice: 42, push: { invoice: '42' } },
    };
    const first = await send(request, { 'idempotency-key': 'invoice-42' });
    expect(first.status).toBe(202);
    const answer = (await first.json()) as SendAnswer;
    expect(answer.unknown).toEqual(['nobody@example.org']);
    // Named twice (by e-mail and by id), Bob gets one notification.
    expect(answer.notifications).toEqual([{ to: bob.email, userid: bob.userid, id: expect.any(String), seq: expect.any(Number) }]);
    const [sent] = answer.notifications;

    const frame = await waitFor(() => live.frames.find((f) => f.id === sent.id), 5000, 'the live frame');
    expect(frame).toMatchObject({
      type: 'notification',
      kind: 'app.invoice',
      title: 'Invoice 42 from Acme',
      body: 'Due on Friday',
      badge: 1,
    });
    expect(frame).toMatchObject({ conversationid: 'invoices', data: { invoice: 42, push: { invoice: '42' } }, seq: sent.seq });
    await waitFor(() => doubles.apns.pushesTo(iphone).length === 1 && pushService.messagesTo(endpoint).length === 1, 5000, 'the pushes');
    const [apns] = doubles.apns.pushesTo(iphone);
    expect(apns.payload.aps).toEqual({
      alert: { title: 'Invoice 42 from Acme', body: 'Due on Friday' },
      badge: 1,
      sound: 'default',
      'thread-id': 'invoices',
    });
    // data.push rides on every push; the rest of data only on the feed and the frames.
    expect(apns.payload).toMatchObject({ id: sent.id, type: 'app.invoice', invoice: '42' });
    expect(apns.payload).not.toHaveProperty('data');
    const [webpush] = pushService.messagesTo(endpoint);
    expect(browser.decrypt(webpush.body)).toMatchObject({ type: 'app.invoice', title: 'Invoice 42 from Acme', badge: 1, id: sent.id });

    const rows = await feedRows(bob.userid);
    const retry = await send(request, { 'idempotency-key': 'invoice-42' });
    expect(retry.status).toBe(202);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(await retry.json()).toEqual(answer);
    expect(await feedRows(bob.userid)).toBe(rows);
    // The same key for another request is a mistake the sender should hear of.
    const reused = await send({ ...request, title: 'Another' }, { 'idempotency-key': 'invoice-42' });
    expect(reused.status).toBe(422);
    expect(((await reused.json()) as { error: string }).error).toMatch(/Idempotency-Key/);
    expect(await feedRows(bob.userid)).toBe(rows);
    // Nothing more reached the devices.
    await send({ to: [carol.userid], title: 'marker' });
    expect(doubles.apns.pushesTo(iphone)).toHaveLength(1);
    expect(live.frames.filter((f) => f.id === sent.id)).toHaveLength(1);
    // A backend's kinds share one metric label: each label value is a series kept for good.
    const metrics = await metricsText(server);
    expect(metrics).toMatch(/herald_notifications_created_total\{type="custom"\} [1-9]/);
    expect(metrics).not.toMatch(/app\.invoice/);
  });

  it('pages the feed oldest first, then reading the thread resets the badge on every device', async () => {
    await send({ to: [bob.userid], title: 'Invoice 43 from Acme', kind: 'app.invoice', conversationid: 'invoices' });
    const firstPage = (await (await feed(bob.email, '?limit=1')).json()) as {
      notifications: Array<{ seq: number; title: string }>;
      next: number | null;
      head: { seq: number; badge: number };
    };
    expect(firstPage.notifications).toHaveLength(1);
    expect(firstPage.head.badge).toBe(2);
    const titles = [firstPage.notifications[0].title];
    let next = firstPage.next;
    while (next !== null) {
      const page = (await (await feed(bob.userid, `?after=${next}&limit=1`)).json()) as typeof firstPage;
      titles.push(...page.notifications.map((n) => n.title));
      expect(page.notifications[0].seq).toBe(next + 1);
      next = page.next;
    }
    expect(titles.filter((t) => t.startsWith('Invoice'))).toEqual(['Invoice 42 from Acme', 'Invoice 43 from Acme']);

    const pushesBefore = doubles.apns.pushesTo(iphone).length;
    const webBefore = pushService.messagesTo(endpoint).length;
    const done = await read(bob.userid, { conversationid: 'invoices' });
    expect(done.status).toBe(200);
    const marked = (await done.json()) as { badge: number; read: number; seq: number };
    expect(marked).toEqual({ badge: 0, read: 2, seq: expect.any(Number) });
    const clean = await waitFor(() => live.frames.find((f) => f.type === 'clean' && f.seq === marked.seq), 5000, 'the clean frame');
    expect(clean).toMatchObject({ badge: 0, conversationid: 'invoices' });
    await waitFor(
      () => doubles.apns.pushesTo(iphone).length > pushesBefore && pushService.messagesTo(endpoint).length > webBefore,
      5000,
      'the clean pushes',
    );
    expect(doubles.apns.pushesTo(iphone).at(-1)!.payload.aps).toEqual({ badge: 0, 'thread-id': 'invoices' });
    expect(browser.decrypt(pushService.messagesTo(endpoint).at(-1)!.body)).toMatchObject({ type: 'clean', badge: 0 });
    // Read again: nothing is unread, nothing is sent.
    expect(await (await read(bob.userid, { conversationid: 'invoices' })).json()).toEqual({ badge: 0, read: 0, seq: null });
  });

  it('reads up to a sequence number: threads with newer notifications stay unread', async () => {
    const a = (await (await send({ to: [carol.userid], title: 'a', conversationid: 'thread-a' })).json()) as SendAnswer;
    await send({ to: [carol.userid], title: 'b', conversationid: 'thread-b' });
    await send({ to: [carol.userid], title: 'no thread' });
    const before = (await (await feed(carol.userid, '?limit=1000')).json()) as { head: { badge: number } };
    expect(before.head.badge).toBeGreaterThanOrEqual(3);
    const marked = (await (await read(carol.userid, { upto: a.notifications[0].seq })).json()) as { badge: number; read: number };
    // thread-a is read; thread-b and the notifications without a thread have newer entries.
    expect(marked).toMatchObject({ badge: before.head.badge - 1, read: 1 });
    const past = await read(carol.userid, { upto: 1_000_000 });
    expect(past.status).toBe(400);
    expect(((await past.json()) as { error: string }).error).toMatch(/upto/);
  });

  it("honours the sender's badge, time to live and priority", async () => {
    const answer = (await (
      await send({ to: [bob.userid], title: 'Low key', badge: 7, ttl: 600, priority: 'normal', conversationid: 'quiet' })
    ).json()) as SendAnswer;
    const push = await waitFor(
      () => doubles.apns.pushesTo(iphone).find((p) => p.payload.id === answer.notifications[0].id),
      5000,
      'the push',
    );
    expect(push.payload.aps.badge).toBe(7);
    expect(push.priority).toBe(5);
    expect(push.expiration * 1000).toBeLessThanOrEqual(Date.now() + 600_000);
    expect(push.expiration * 1000).toBeGreaterThan(Date.now() + 500_000);
    const web = await waitFor(
      () => pushService.messagesTo(endpoint).find((m) => browser.decrypt(m.body).id === answer.notifications[0].id),
      5000,
      'the web push',
    );
    expect(web.urgency).toBe('normal');
    expect(web.ttl).toBeLessThanOrEqual(600);
    const kept = (await (await send({ to: [bob.userid], title: 'Keep', badge: 'keep' })).json()) as SendAnswer;
    const frame = await waitFor(() => live.frames.find((f) => f.id === kept.notifications[0].id), 5000, 'the frame');
    expect(frame.badge).toBe(7);
  });

  it('refuses bad calls in the /v1 shape, naming the field, and changes nothing', async () => {
    const before = await snapshot(server.app.parts.store);
    const refusals: Array<[unknown, RegExp]> = [
      [{ to: [], title: 'x' }, /to/],
      [{ to: Array.from({ length: 10_001 }, (_, i) => `u${i}`), title: 'x' }, /to/],
      [{ to: [bob.userid] }, /title/],
      [{ to: [bob.userid], title: 'x'.repeat(201) }, /title/],
      [{ to: [bob.userid], title: 'x', body: 'y'.repeat(501) }, /body/],
      [{ to: [bob.userid], title: 'x', data: { blob: 'z'.repeat(5000) } }, /data/],
      [{ to: [bob.userid], title: 'x', data: [1] }, /data/],
      [{ to: [bob.userid], title: 'x', data: { push: { n: 1 } } }, /data\.push/],
      [{ to: [bob.userid], title: 'x', data: { push: { n: 'y'.repeat(600) } } }, /data\.push/],
      [{ to: [bob.userid], title: 'x', kind: 'system.friend_request' }, /kind/],
      [{ to: [bob.userid], title: 'x', kind: 'Invoice' }, /kind/],
      [{ to: [bob.userid], title: 'x', badge: 'up' }, /badge/],
      [{ to: [bob.userid], title: 'x', ttl: '60' }, /ttl/],
      [{ to: [bob.userid], title: 'x', priority: 'urgent' }, /priority/],
      [{ to: [bob.userid], title: 'x', colour: 'red' }, /colour/],
    ];
    for (const [body, field] of refusals) {
      const response = await send(body);
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(field);
    }
    const noToken = await fetch(`${server.http}/v1/notifications`, {
      method: 'POST',
      body: JSON.stringify({ to: [bob.userid], title: 'x' }),
    });
    expect(noToken.status).toBe(401);
    // A token without the scope, or a user's station, may not send.
    const unscoped = await send({ to: [bob.userid], title: 'x' }, reader);
    expect(unscoped.status).toBe(403);
    expect(((await unscoped.json()) as { error: string }).error).toMatch(/notifications:send/);
    expect((await read(bob.userid, { upto: 1 }, reader)).status).toBe(403);
    expect((await send({ to: [bob.userid], title: 'x' }, { authorization: '', 'ozeki-station': bob.client.station })).status).toBe(403);
    // A user may read their own feed, and nobody else's.
    expect((await feed(bob.userid, '', { 'ozeki-station': bob.client.station })).status).toBe(200);
    expect((await feed(carol.userid, '', { 'ozeki-station': bob.client.station })).status).toBe(403);
    expect(
      (await read(carol.userid, { upto: 1 }, { 'ozeki-station': bob.client.station, 'content-type': 'application/json' })).status,
    ).toBe(403);
    expect((await read(bob.userid, { upto: 1, conversationid: 'x' })).status).toBe(400);
    expect((await feed('nobody@example.org')).status).toBe(404);
    expect(await snapshot(server.app.parts.store)).toEqual(before);
  });

  it('refuses a revoked token at once', async () => {
    const listed = (await (await fetch(`${server.http}/v1/tokens`, { headers: admin })).json()) as {
      tokens: Array<{ id: string; name: string }>;
    };
    for (const token of listed.tokens) {
      const revoked = await fetch(`${server.http}/v1/tokens/${token.id}`, {
        method: 'DELETE',
        headers: { authorization: admin.authorization },
      });
      expect(revoked.status).toBe(204);
    }
    expect((await send({ to: [bob.userid], title: 'x' })).status).toBe(401);
    expect((await feed(bob.userid)).status).toBe(401);
  });
});
