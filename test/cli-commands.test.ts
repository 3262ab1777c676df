import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HERALD_BIN, ROOT, runCli } from './helpers/cli.ts';
import { SQLITE, TEST_REDIS_URL } from './helpers/stores.ts';
import { connectDevice } from './helpers/websocket.ts';
import { ADMIN_TOKEN, addUser, befriend, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { addPushDevice } from './helpers/push.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { openStore, type Store } from '../src/store/db.ts';
import { tracked } from './helpers/children.ts';

const lines = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

// Each run starts Node and compiles the CLI: seconds apiece on a busy machine.
describe('herald user, friend, device, outbox and feed commands', { timeout: 120_000 }, () => {
  let dataDir: string;
  let env: Record<string, string>;
  let store: Store;
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const children = new Set<ReturnType<typeof spawn>>();
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-cli-commands-'));
    env = { HERALD_DATA_DIR: dataDir };
    // A running node on the database the command line works on.
    store = await openStore({ sqliteFile: path.join(dataDir, 'herald.db') });
    server = await startTestServer(SQLITE, {}, { store });
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    await befriend(server, alice, bob);
  });
  afterEach(() => {
    for (const child of children) child.kill('SIGKILL');
    children.clear();
  });
  afterAll(async () => {
    await server?.stop();
    await store?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function send(to: TestUser, title: string): Promise<void> {
    const response = await fetch(`${server.http}/v1/notifications`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ to: [to.userid], title }),
    });
    expect(response.status).toBe(202);
  }

  it('--version prints the version of package.json', async () => {
    const result = await runCli(['--version'], env);
    expect(result.code).toBe(0);
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(result.stdout).toBe(`${version}\n`);
  });

  it('device list prints what GET /v1/users/:id/devices answers, device remove forgets one', async () => {
    const phone = await addPushDevice(server, alice, 'android', 'fcm-token-of-alice');
    const listed = await runCli(['device', 'list', alice.email], env);
    expect(listed.stderr).toBe('');
    expect(listed.code).toBe(0);
    const api = await fetch(`${server.http}/v1/users/${alice.userid}/devices`, { headers: admin });
    const { devices } = (await api.json()) as { devices: Array<Record<string, unknown>> };
    expect(devices.map((d) => d.station)).toEqual([alice.client.station, phone.station]);
    expect(lines(listed.stdout)).toEqual(devices);

    const removed = await runCli(['device', 'remove', alice.userid, phone.station.toUpperCase()], env);
    expect(removed.code).toBe(0);
    expect(JSON.parse(removed.stdout)).toEqual({ userid: alice.userid, station: phone.station });
    const after = await fetch(`${server.http}/v1/users/${alice.userid}/devices`, { headers: admin });
    expect(((await after.json()) as { devices: Array<{ station: string }> }).devices.map((d) => d.station)).toEqual([alice.client.station]);
    const unknown = await runCli(['device', 'remove', alice.userid, phone.station], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('herald: no such device\n');
  });

  it('friend remove ends a friendship both ways and says when there was none', async () => {
    const removed = await runCli(['friend', 'remove', alice.email, bob.email], env);
    expect(removed.code).toBe(0);
    expect(JSON.parse(removed.stdout)).toEqual({ a: alice.userid, b: bob.userid });
    expect(await store.db.selectFrom('friendships').selectAll().execute()).toEqual([]);
    const again = await runCli(['friend', 'remove', bob.userid, alice.userid], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`herald: ${bob.userid} and ${alice.userid} are not friends\n`);
  });

  it('outbox status counts pending, retrying, held and dead rows per provider', async () => {
    await addPushDevice(server, bob, 'ios', 'cd'.repeat(32));
    await send(bob, 'first');
    await send(bob, 'second');
    await send(bob, 'third');
    const rows = await store.db.selectFrom('deliveries').select('id').where('user_id', '=', bob.userid).orderBy('id').execute();
    expect(rows).toHaveLength(3);
    // No APNs is configured on this node, so the rows stay where they are put.
    await store.db.updateTable('deliveries').set({ attempts: 2, last_error: 'APNs 503' }).where('id', '=', rows[1].id).execute();
    await store.db.updateTable('deliveries').set({ state: 'dead', attempts: 1 }).where('id', '=', rows[2].id).execute();
    const result = await runCli(['outbox', 'status'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const status = lines(result.stdout);
    expect(status.map((s) => s.provider)).toEqual(['apns', 'fcm', 'webpush']);
    expect(status[0]).toMatchObject({
      provider: 'apns',
      pending: 1,
      retrying: 1,
      held: 0,
      dead: 1,
      delivered: 0,
      oldestopen: expect.any(Number),
    });
    expect(status[1]).toMatchObject({ provider: 'fcm', pending: 0, retrying: 0, dead: 0, oldestopen: null });
  });

  it('feed tail prints the frames /v1 and /ws give: the newest few, or all after --after', async () => {
    await send(alice, 'one');
    await send(alice, 'two');
    await send(alice, 'three');
    const api = await fetch(`${server.http}/v1/users/${alice.userid}/notifications?after=0`, { headers: admin });
    const { notifications } = (await api.json()) as { notifications: Array<{ seq: number; title: string }> };
    expect(notifications.map((n) => n.title)).toEqual(['one', 'two', 'three']);

    const all = await runCli(['feed', 'tail', alice.email, '--after', '0'], env);
    expect(all.code).toBe(0);
    expect(lines(all.stdout)).toEqual(notifications);
    const newest = await runCli(['feed', 'tail', alice.userid, '-n', '2'], env);
    expect(newest.code).toBe(0);
    expect(lines(newest.stdout)).toEqual(notifications.slice(1));
  });

  it('feed tail --follow prints new notifications as they are written and stops on SIGTERM', async () => {
    const head = await fetch(`${server.http}/v1/users/${alice.userid}/notifications?after=0`, { headers: admin });
    const { notifications } = (await head.json()) as { notifications: Array<{ seq: number }> };
    const lastSeq = notifications.at(-1)!.seq;
    const child = tracked(
      spawn(process.execPath, [HERALD_BIN, 'feed', 'tail', alice.email, '--after', String(lastSeq), '--follow'], {
        env: { ...process.env, HERALD_LOG_LEVEL: 'warn', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Written before or after the follower starts: it prints everything after --after either way.
    await send(alice, 'later');
    await waitFor(() => stdout.includes('"later"'), 60_000, 'the first followed notification');
    await send(alice, 'even later');
    await waitFor(() => stdout.includes('"even later"'), 10_000, 'the second followed notification');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    const printed = lines(stdout);
    expect(printed).toMatchObject([
      { type: 'notification', seq: lastSeq + 1, title: 'later' },
      { type: 'notification', seq: lastSeq + 2, title: 'even later' },
    ]);
  });

  it('user delete removes the user and all that is theirs, and names an unknown one', async () => {
    const carol = await addUser(server, 'Carol');
    await befriend(server, carol, bob);
    await send(carol, 'for carol');
    const deleted = await runCli(['user', 'delete', carol.email], env);
    expect(deleted.stderr).toBe('');
    expect(deleted.code).toBe(0);
    expect(JSON.parse(deleted.stdout)).toEqual({
      userid: carol.userid,
      email: carol.email,
      stations: [carol.client.station],
      notifications: 1,
      deliveries: 0,
      friends: 1,
      conversations: 0,
    });
    expect(await store.db.selectFrom('users').select('id').where('id', '=', carol.userid).execute()).toEqual([]);
    expect(await store.db.selectFrom('friendships').select('user_id').where('friend_id', '=', carol.userid).execute()).toEqual([]);
    const unknown = await runCli(['user', 'delete', carol.email], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`herald: no such user: ${carol.email}\n`);
  });

  it('listen follows HERALD_HTTP_PORT and reports a server it cannot reach in one line', async () => {
    // A port nobody listens on: taken from the system, then let go.
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port: taken } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(taken));
      });
    });
    const result = await runCli(['listen', '--udp', '--station', newStation(), '--apikey', alice.apikey], {
      ...env,
      HERALD_HTTP_PORT: String(port),
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`herald: cannot reach http://127.0.0.1:${port}: connection refused\n`);
  });

  it.each<[string, string[], RegExp]>([
    ['a missing argument', ['device', 'list'], /missing required argument 'user'/],
    ['a station that is not 32 hex characters', ['device', 'remove', 'alice@example.org', 'abc'], /station .*32 hexadecimal characters/],
    ['a sequence that is not a number', ['feed', 'tail', 'alice@example.org', '--after', 'last'], /--after must be a whole number/],
    ['an unknown command', ['outbox', 'flush'], /unknown command 'flush'/],
    ['listen without a channel', ['listen', '--station', '0123456789abcdef0123456789abcdef', '--secret', 'ab'], /--udp/],
  ])('%s is a usage error: exit code 2 and one line', async (_case, args, message) => {
    const result = await runCli(args, env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stdout).toBe('');
  });

  it.each([
    ['user', 'delete'],
    ['friend', 'remove'],
    ['device', 'list'],
    ['device', 'remove'],
    ['outbox', 'status'],
    ['feed', 'tail'],
  ])('herald %s %s --help shows examples', async (group, command) => {
    const help = await runCli([group, command, '--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(new RegExp(`Examples:\\n  \\$ herald ${group} ${command}\\b`));
  });
});

if (!TEST_REDIS_URL) console.warn('HERALD_TEST_REDIS_URL is unset: the command line case over the Redis bus is skipped');

describe.skipIf(!TEST_REDIS_URL)('herald user delete and device remove with HERALD_REDIS_URL', { timeout: 120_000 }, () => {
  let dataDir: string;
  let env: Record<string, string>;
  let store: Store;
  let server: TestServer;
  const receivers: Array<{ close(): void }> = [];

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-cli-redis-'));
    env = { HERALD_DATA_DIR: dataDir, HERALD_REDIS_URL: TEST_REDIS_URL! };
    store = await openStore({ sqliteFile: path.join(dataDir, 'herald.db') });
    server = await startTestServer(SQLITE, { HERALD_REDIS_URL: TEST_REDIS_URL! }, { store });
  });
  afterEach(() => {
    for (const receiver of receivers.splice(0)) receiver.close();
  });
  afterAll(async () => {
    await server?.stop();
    await store?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("close the removed devices' live connections on the running node at once", async () => {
    const erin = await addUser(server, 'Erin');
    const tablet = new OzekiClient(server.http, newStation());
    await tablet.login(erin.apikey, 'browser');
    const onTablet = await connectDevice(server, tablet.station);
    receivers.push(onTablet.receiver);
    // The CLI starts a process of its own and opens the database first: slow on a busy machine.
    const tabletRefused = onTablet.receiver.next('refused', undefined, 30_000);
    const removed = await runCli(['device', 'remove', erin.email, tablet.station], env);
    expect(removed.code).toBe(0);
    expect(await tabletRefused).toEqual({ code: 4401, reason: 'this device was removed' });

    const onDesk = await connectDevice(server, erin.client.station);
    receivers.push(onDesk.receiver);
    const deskRefused = onDesk.receiver.next('refused', undefined, 30_000);
    const deleted = await runCli(['user', 'delete', erin.userid], env);
    expect(deleted.code).toBe(0);
    expect(await deskRefused).toEqual({ code: 4401, reason: 'this user was deleted' });
    // At once: the node forgot the station rather than waiting out its memory of it.
    expect((await erin.client.call('chatconversation', { action: 'list' })).httpStatus).toBe(401);
  });
});

// The client the tests use is the one `herald listen` uses: it gives up on a login that is never answered.
describe('the Ozeki client behind herald listen', () => {
  it('gives up on a server that accepts the connection but never answers', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as net.AddressInfo;
      const client = new OzekiClient(`http://127.0.0.1:${port}`, newStation(), { timeoutMs: 200 });
      await expect(client.login('x')).rejects.toMatchObject({ name: 'TimeoutError' });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
