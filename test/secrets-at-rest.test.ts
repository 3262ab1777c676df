import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import type { ChildProcess } from 'node:child_process';
import { createHmac, X509Certificate } from 'node:crypto';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OzekiClient, ozekiTime } from '../client/ozeki.ts';
import { UdpReceiver } from '../client/udp-receiver.ts';
import { openStore, type Store } from '../src/store/db.ts';
import { migrateToLatest } from '../src/store/migrations.ts';
import { SecretBox } from '../src/store/secrets.ts';
import { userByApiKey } from '../src/chat/users.ts';
import { udpSecretOf } from '../src/chat/devices.ts';
import { runCli, startServeProcess } from './helpers/cli.ts';
import { ADMIN_TOKEN, addUser, newStation, startTestServer, type TestServer } from './helpers/server.ts';
import { describeEachStore, describeOnPostgres, SQLITE, TEST_DATABASE_URL, TEST_SECRETS } from './helpers/stores.ts';

/** Every way a secret could lie in a file: as text, as hex or base64 of its text, and of its bytes when it is hex or base64url. */
function spellings(secret: string): Buffer[] {
  const text = Buffer.from(secret);
  const forms = [text, Buffer.from(text.toString('hex')), Buffer.from(text.toString('base64'))];
  const bytes = /^[0-9a-f]+$/.test(secret) ? Buffer.from(secret, 'hex') : Buffer.from(secret, 'base64url');
  if (bytes.length >= 16) forms.push(bytes, Buffer.from(bytes.toString('base64')), Buffer.from(bytes.toString('hex')));
  return forms;
}

/** The secrets (named) found in any file of the directory, in any spelling. */
function secretsFoundIn(dir: string, secrets: Record<string, string>): string[] {
  const found: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const bytes = fs.readFileSync(path.join(dir, name));
    for (const [what, secret] of Object.entries(secrets)) {
      if (spellings(secret).some((form) => bytes.includes(form))) found.push(`${what} in ${name}`);
    }
  }
  return found;
}

const modeOf = (file: string) => fs.statSync(file).mode & 0o777;

/** A signed Ozeki call: Ozeki-Signature is hex(HMAC-SHA256(apikey, body)). */
async function signedAvailability(base: string, station: string, key: string) {
  const body = JSON.stringify({ clientversioncode: 3, timestamp: ozekiTime(), action: 'useravailable' });
  const response = await fetch(`${base}/?srv=chatserver&api=chatavailability`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'ozeki-station': station,
      'ozeki-signature': createHmac('sha256', key).update(body).digest('hex'),
    },
    body,
  });
  return { status: response.status, body: (await response.json()) as { status: string; errormessage: string } };
}

describe('secrets at rest: a node on a fresh data directory (SQLite)', () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-secrets-'));
  const dataDir = path.join(parent, 'data');
  const env = {
    HERALD_DATA_DIR: dataDir,
    HERALD_HTTP_PORT: '0',
    HERALD_HTTPS_PORT: '0',
    HERALD_UDP_PORT: '0',
    HERALD_ADMIN_TOKEN: '',
    HERALD_SECRET_KEY: '',
  };
  let child: ChildProcess | undefined;
  let receiver: UdpReceiver | undefined;

  async function stopChild() {
    if (!child) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
    child = undefined;
  }
  afterEach(async () => {
    await receiver?.close();
    receiver = undefined;
    await stopChild();
  });
  afterAll(() => fs.rmSync(parent, { recursive: true, force: true }));

  it('keeps no API key, token or UDP secret in the clear, with owner-only modes, and all of them work after a restart', async () => {
    const first = await startServeProcess(env);
    child = first.child;
    const adminToken = /generated an admin token, shown this once .*: ([\w-]+)"/.exec(first.output())?.[1];
    expect(adminToken).toBeDefined();
    const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };

    const keys: Record<string, string> = {};
    for (const name of ['Alice', 'Bob']) {
      const made = await fetch(`${first.endpoints.http}/v1/users`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({ email: `${name.toLowerCase()}@example.org`, name }),
      });
      expect(made.status).toBe(201);
      keys[name] = ((await made.json()) as { apikey: string }).apikey;
    }
    const station = newStation();
    const login = await new OzekiClient(first.endpoints.http, station).login(keys.Alice, 'windows');
    const udpSecret = login.udpsecret as string;
    expect(udpSecret).toMatch(/^[0-9a-f]{64}$/);
    const tokenAnswer = await fetch(`${first.endpoints.http}/v1/tokens`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'billing', scopes: ['users:read'] }),
    });
    expect(tokenAnswer.status).toBe(201);
    const scopedToken = ((await tokenAnswer.json()) as { token: string }).token;
    // Listing users shows no API key.
    const listed = await (await fetch(`${first.endpoints.http}/v1/users`, { headers: admin })).text();
    for (const key of Object.values(keys)) expect(listed).not.toContain(key);
    await stopChild();

    const secrets = { 'Alice API key': keys.Alice, 'Bob API key': keys.Bob, 'UDP secret': udpSecret, 'scoped token': scopedToken };
    expect(secretsFoundIn(dataDir, { ...secrets, 'admin token': adminToken! })).toEqual([]);
    // The database itself (and its log, if one were left) is opened too: the check above saw its bytes.
    expect(fs.readdirSync(dataDir)).toContain('herald.db');

    expect(modeOf(dataDir)).toBe(0o700);
    for (const file of ['herald.db', 'secret.key', 'admin-token.sha256', 'tls-key.pem', 'vapid.json']) {
      expect([file, modeOf(path.join(dataDir, file))]).toEqual([file, 0o600]);
    }

    const second = await startServeProcess(env);
    child = second.child;
    // The admin token is the same one, though only its hash was kept, and it was not printed again.
    expect(second.output()).not.toContain(adminToken!);
    expect((await fetch(`${second.endpoints.http}/v1/users`, { headers: admin })).status).toBe(200);
    expect((await fetch(`${second.endpoints.http}/v1/users`, { headers: { authorization: `Bearer ${scopedToken}` } })).status).toBe(200);
    // Login finds Alice by her key's hash and hands back the same UDP secret.
    const again = await new OzekiClient(second.endpoints.http, station).login(keys.Alice, 'windows');
    expect(again.udpsecret).toBe(udpSecret);
    expect(
      (await new OzekiClient(second.endpoints.http, newStation()).call('chatlogin', { action: 'login', apikey: 'f'.repeat(48) }))
        .httpStatus,
    ).toBe(401);
    // Ozeki-Signature is checked with the key opened from its sealed copy.
    expect((await signedAvailability(second.endpoints.http, station, keys.Alice)).body.status).toBe('OK');
    const forged = await signedAvailability(second.endpoints.http, station, keys.Bob);
    expect(forged.status).toBe(401);
    expect(forged.body.errormessage).toContain('Ozeki-Signature');
    // The UDP listener accepts the hello only with a MAC under the secret it opened.
    receiver = new UdpReceiver({ endpoint: second.endpoints.udp, station, secret: udpSecret });
    const registered = once(receiver, 'registered');
    await receiver.start();
    await registered;
  }, 60_000);
});

describeEachStore('a new API key for a user', (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(kind);
  });
  afterAll(async () => server?.stop());

  const reset = (id: string, token = ADMIN_TOKEN) =>
    fetch(`${server.http}/v1/users/${encodeURIComponent(id)}/apikey`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });

  it('POST /v1/users/:id/apikey returns a new key once: the old one stops logging in, stations stay bound', async () => {
    const carol = await addUser(server, 'Carol');
    const answer = await reset(carol.email);
    expect(answer.status).toBe(200);
    const { userid, apikey } = (await answer.json()) as { userid: string; apikey: string };
    expect(userid).toBe(carol.userid);
    expect(apikey).toMatch(/^[0-9a-f]{48}$/);
    expect(apikey).not.toBe(carol.apikey);

    const stale = await new OzekiClient(server.http, newStation()).call('chatlogin', { action: 'login', apikey: carol.apikey });
    expect(stale.httpStatus).toBe(401);
    expect(stale.body.errormessage).toBe('the apikey is not valid');
    expect((await new OzekiClient(server.http, newStation()).login(apikey)).userid).toBe(carol.userid);
    // The station that logged in with the old key is still Carol's.
    expect((await carol.client.ok('chatfriends', { action: 'list' })).status).toBe('OK');
  });

  it('needs the admin token or users:write, and names an unknown user', async () => {
    const dave = await addUser(server, 'Dave');
    const make = async (scopes: string[]) => {
      const response = await fetch(`${server.http}/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `t-${scopes.join('-')}`, scopes }),
      });
      return ((await response.json()) as { token: string }).token;
    };
    const reader = await reset(dave.userid, await make(['users:read']));
    expect(reader.status).toBe(403);
    expect(((await reader.json()) as { error: string }).error).toContain('users:write');
    expect((await reset(dave.userid, await make(['users:write']))).status).toBe(200);
    const asDave = await fetch(`${server.http}/v1/users/${dave.userid}/apikey`, {
      method: 'POST',
      headers: { 'ozeki-station': dave.client.station },
    });
    expect(asDave.status).toBe(403);
    const unknown = await reset('nobody@example.org');
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toBe('no such user: nobody@example.org');
    expect((await fetch(`${server.http}/v1/users/${dave.userid}/apikey`, { method: 'POST' })).status).toBe(401);
  });

  it('GET /v1/users lists no API key or its hash', async () => {
    const erin = await addUser(server, 'Erin');
    const response = await fetch(`${server.http}/v1/users`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const { users } = (await response.json()) as { users: Array<Record<string, unknown>> };
    const listed = users.find((u) => u.userid === erin.userid)!;
    expect(Object.keys(listed).sort()).toEqual(['availability', 'created_at', 'email', 'name', 'nick', 'unread', 'userid']);
  });
});

describe('herald user key reset and herald admin-token reset', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-key-reset-'));
  const env = { HERALD_DATA_DIR: dataDir, HERALD_ADMIN_TOKEN: '' };
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('prints a new key once; the old one no longer finds the user', async () => {
    const added = await runCli(['user', 'add', '--email', 'fay@example.org', '--name', 'Fay'], env);
    expect(added.code).toBe(0);
    const { userid, apikey: oldKey } = JSON.parse(added.stdout) as { userid: string; apikey: string };
    const reset = await runCli(['user', 'key', 'reset', 'fay@example.org'], env);
    expect(reset.code).toBe(0);
    const { userid: same, apikey: newKey } = JSON.parse(reset.stdout) as { userid: string; apikey: string };
    expect(same).toBe(userid);
    expect(newKey).not.toBe(oldKey);
    const listed = await runCli(['user', 'list'], env);
    expect(listed.stdout).not.toContain(newKey);

    const store = await openStore({ sqliteFile: path.join(dataDir, 'herald.db') });
    try {
      expect(await userByApiKey(store.db, store.secrets, oldKey)).toBeUndefined();
      expect((await userByApiKey(store.db, store.secrets, newKey))?.id).toBe(userid);
    } finally {
      await store.close();
    }
  }, 30_000);

  it('exits with 2 and one line without a user, with 1 for an unknown one, and shows examples', async () => {
    const missing = await runCli(['user', 'key', 'reset'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe('herald: name the user: herald user key reset <email-or-id>');
    const unknown = await runCli(['user', 'key', 'reset', 'nobody@example.org'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no such user: nobody@example.org');
    const help = await runCli(['user', 'key', 'reset', '--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('$ herald user key reset alice@example.org');
  }, 30_000);

  it('admin-token reset prints a token whose hash alone is kept, owner-only', async () => {
    const result = await runCli(['admin-token', 'reset'], env);
    expect(result.code).toBe(0);
    const { token, file } = JSON.parse(result.stdout) as { token: string; file: string };
    expect(file).toBe(path.join(dataDir, 'admin-token.sha256'));
    expect(fs.readFileSync(file, 'utf8')).not.toContain(token);
    expect(modeOf(file)).toBe(0o600);
    const refused = await runCli(['admin-token', 'reset'], { ...env, HERALD_ADMIN_TOKEN: 'given' });
    expect(refused.code).toBe(2);
  }, 30_000);
});

/** A database as it was before secrets at rest, with Ann's key and her device's UDP secret in the clear. */
async function writeClearSecrets(db: Kysely<any>): Promise<{ apikey: string; udpSecret: string; station: string }> {
  const apikey = 'ab12'.repeat(12);
  const udpSecret = 'cd34'.repeat(16);
  const station = 'ef'.repeat(16);
  await db.insertInto('users').values({ id: 'u-ann', email: 'ann@example.org', name: 'Ann', nick: 'ann', apikey, created_at: 1 }).execute();
  await db
    .insertInto('devices')
    .values({ station, user_id: 'u-ann', platform: 'windows', udp_secret: udpSecret, last_seen_at: 1, created_at: 1 })
    .execute();
  return { apikey, udpSecret, station };
}

async function expectSealed(store: Store, clear: { apikey: string; udpSecret: string; station: string }) {
  const user = await userByApiKey(store.db, store.secrets, clear.apikey);
  expect(user?.id).toBe('u-ann');
  expect(user?.apikey_hash).not.toContain(clear.apikey);
  const device = await store.db.selectFrom('devices').selectAll().where('station', '=', clear.station).executeTakeFirstOrThrow();
  expect(device.udp_secret_sealed).not.toBe(clear.udpSecret);
  expect(udpSecretOf(store.secrets, device)).toBe(clear.udpSecret);
}

const BEFORE = '0012_preferences';

describe('migration 0013 (secrets at rest) on sqlite', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-migrate-0013-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('seals the keys of a database made before it, leaves none of them in the file, and refuses another data key', async () => {
    const file = path.join(dir, 'herald.db');
    const database = new SQLite(file);
    database.pragma('journal_mode = WAL');
    const old = new Kysely<any>({ dialect: new SqliteDialect({ database }) });
    await migrateToLatest(old, 'sqlite', TEST_SECRETS, undefined, BEFORE);
    const clear = await writeClearSecrets(old);
    await old.destroy();
    expect(fs.readFileSync(file).includes(Buffer.from(clear.apikey)) || fs.existsSync(`${file}-wal`)).toBe(true);

    const store = await openStore({ sqliteFile: file });
    try {
      await expectSealed(store, clear);
      for (const name of [file, `${file}-wal`]) {
        if (!fs.existsSync(name)) continue;
        const bytes = fs.readFileSync(name);
        expect([name, bytes.includes(Buffer.from(clear.apikey)), bytes.includes(Buffer.from(clear.udpSecret))]).toEqual([
          name,
          false,
          false,
        ]);
      }
    } finally {
      await store.close();
    }
    expect(modeOf(file)).toBe(0o600);
    expect(modeOf(path.join(dir, 'secret.key'))).toBe(0o600);

    await expect(openStore({ sqliteFile: file, secrets: SecretBox.ephemeral() })).rejects.toThrow(/HERALD_SECRET_KEY/);
  });
});

describeOnPostgres('migration 0013 (secrets at rest)', () => {
  const schema = `t_${Date.now().toString(36)}_${process.pid}`;
  afterAll(async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it('seals the keys of a database made before it, and a node with another data key refuses to start', async () => {
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1, options: `-c search_path=${schema}` });
    const old = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    await migrateToLatest(old, 'postgres', TEST_SECRETS, schema, BEFORE);
    const clear = await writeClearSecrets(old);
    await old.destroy();

    const store = await openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 2, secrets: TEST_SECRETS });
    try {
      await expectSealed(store, clear);
      const rows = JSON.stringify([
        await store.db.selectFrom('users').selectAll().execute(),
        await store.db.selectFrom('devices').selectAll().execute(),
      ]);
      expect(rows).not.toContain(clear.apikey);
      expect(rows).not.toContain(clear.udpSecret);
    } finally {
      await store.close();
    }
    await expect(
      openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 1, secrets: SecretBox.ephemeral() }),
    ).rejects.toThrow('the data key is not the one this database was sealed with: set HERALD_SECRET_KEY');
  });
});

describe('the self-signed certificate', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it.each([
    ['a DNS name', 'herald.example.org', 'DNS:herald.example.org'],
    ['an IP address', '192.0.2.7', 'IP Address:192.0.2.7'],
  ])('names HERALD_PUBLIC_HOST when it is %s', async (_case, host, altName) => {
    server = await startTestServer(SQLITE, { HERALD_PUBLIC_HOST: host });
    const names = new X509Certificate(server.ca).subjectAltName ?? '';
    expect(names.split(', ')).toEqual(expect.arrayContaining(['DNS:localhost', 'IP Address:127.0.0.1', altName]));
    expect(modeOf(path.join(server.dataDir, 'tls-key.pem'))).toBe(0o600);
  });
});
