import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, newStation, startTestServer, type TestServer } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';
import { authenticateApiToken, createApiToken, LAST_USE_INTERVAL_MS } from '../src/chat/api-tokens.ts';

interface CreatedToken {
  id: string;
  name: string;
  scopes: string[];
  token: string;
  created: number;
  expires: number | null;
}

interface ListedToken {
  id: string;
  name: string;
  scopes: string[];
  created: number;
  expires: number | null;
  lastused: number | null;
  revoked?: number;
}

describeEachStore('scoped API tokens of the native API', (kind) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(kind);
  });
  afterAll(async () => server?.stop());

  /** A /v1 call with the given bearer token (or none), and a JSON body when there is one. */
  const call = (method: string, path: string, bearer?: string, body?: unknown, extra: Record<string, string> = {}) =>
    fetch(`${server.http}/v1${path}`, {
      method,
      headers: {
        ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...extra,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const errorOf = async (response: Response) => ((await response.json()) as { error: string }).error;

  async function makeToken(request: { name: string; scopes: string[]; expiresin?: number }): Promise<CreatedToken> {
    const response = await call('POST', '/tokens', ADMIN_TOKEN, request);
    expect(response.status).toBe(201);
    return (await response.json()) as CreatedToken;
  }

  async function listTokens(): Promise<ListedToken[]> {
    const response = await call('GET', '/tokens', ADMIN_TOKEN);
    expect(response.status).toBe(200);
    return ((await response.json()) as { tokens: ListedToken[] }).tokens;
  }

  it('the admin makes a token that is shown once and stored only as its SHA-256', async () => {
    const before = Date.now();
    const created = await makeToken({ name: ' billing-backend ', scopes: ['users:read', 'notifications:send'], expiresin: 3600 });
    expect(created).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{32}$/),
      name: 'billing-backend',
      // Known scopes come back in their canonical order.
      scopes: ['notifications:send', 'users:read'],
      token: expect.stringMatching(/^hrld_[A-Za-z0-9_-]{43}$/),
      created: expect.any(Number),
      expires: created.created + 3_600_000,
    });
    expect(created.created).toBeGreaterThanOrEqual(before);

    const rows = await server.app.parts.store.db.selectFrom('api_tokens').selectAll().execute();
    const stored = JSON.stringify(rows);
    expect(stored).not.toContain(created.token);
    expect(stored).not.toContain(created.token.slice('hrld_'.length));
    const row = rows.find((r) => r.id === created.id)!;
    expect(row.token_hash).toBe(createHash('sha256').update(created.token).digest('hex'));

    const listed = (await listTokens()).find((t) => t.id === created.id)!;
    expect(listed).toEqual({
      id: created.id,
      name: 'billing-backend',
      scopes: ['notifications:send', 'users:read'],
      created: created.created,
      expires: created.expires,
      lastused: null,
    });
    const listText = await (await call('GET', '/tokens', ADMIN_TOKEN)).text();
    expect(listText).not.toContain(created.token);
    expect(listText).not.toContain(row.token_hash);
  });

  it('a token makes the calls of its scopes, and gets 403 naming the scope for the others', async () => {
    const reader = await makeToken({ name: 'directory', scopes: ['users:read'] });
    expect(reader.expires).toBeNull();
    const grace = await addUser(server, 'Grace', 'windows');

    const users = await call('GET', '/users', reader.token);
    expect(users.status).toBe(200);
    expect(((await users.json()) as { users: Array<{ userid: string }> }).users.map((u) => u.userid)).toContain(grace.userid);
    const devices = await call('GET', `/users/${grace.userid}/devices`, reader.token);
    expect(devices.status).toBe(200);
    expect(((await devices.json()) as { devices: Array<{ station: string }> }).devices).toEqual([
      expect.objectContaining({ station: grace.client.station }),
    ]);

    const before = await snapshot(server.app.parts.store);
    const create = await call('POST', '/users', reader.token, { email: 'ivan@example.org', name: 'Ivan' });
    expect(create.status).toBe(403);
    expect(await errorOf(create)).toMatch(/needs the scope users:write/);
    const friends = await call('POST', '/friends', reader.token, { a: grace.userid, b: grace.userid });
    expect(friends.status).toBe(403);
    expect(await errorOf(friends)).toMatch(/users:write/);
    const register = await call('PUT', `/users/${grace.userid}/devices/${newStation()}`, reader.token, { platform: 'android' });
    expect(register.status).toBe(403);
    expect(await errorOf(register)).toMatch(/needs the scope devices:write/);
    const remove = await call('DELETE', `/users/${grace.userid}/devices/${grace.client.station}`, reader.token);
    expect(remove.status).toBe(403);
    expect(await errorOf(remove)).toMatch(/devices:write/);
    expect(await snapshot(server.app.parts.store)).toEqual(before);

    const writer = await makeToken({ name: 'signup', scopes: ['users:write'] });
    const made = await call('POST', '/users', writer.token, { email: 'ivan@example.org', name: 'Ivan' });
    expect(made.status).toBe(201);
    const listing = await call('GET', '/users', writer.token);
    expect(listing.status).toBe(403);
    expect(await errorOf(listing)).toMatch(/needs the scope users:read/);
  });

  it('a devices:write token registers and removes a device for any user, as the admin does', async () => {
    const heidi = await addUser(server, 'Heidi');
    const gateway = await makeToken({ name: 'push-gateway', scopes: ['devices:write'] });
    const station = newStation();
    const put = await call('PUT', `/users/${heidi.userid}/devices/${station}`, gateway.token, {
      platform: 'android',
      pushtoken: 'fcm-token-1',
    });
    expect(put.status).toBe(200);
    expect(((await put.json()) as { device: unknown }).device).toMatchObject({ station, platform: 'android', push: { provider: 'fcm' } });
    const row = await server.app.parts.store.db
      .selectFrom('devices')
      .select(['user_id', 'push_token'])
      .where('station', '=', station)
      .executeTakeFirst();
    expect(row).toEqual({ user_id: heidi.userid, push_token: 'fcm-token-1' });

    const removed = await call('DELETE', `/users/${heidi.userid}/devices/${station}`, gateway.token);
    expect(removed.status).toBe(204);
    expect(await server.app.parts.store.db.selectFrom('devices').select('station').where('station', '=', station).execute()).toEqual([]);
  });

  it("a user's own station still works on their devices, but on no call of the admin's", async () => {
    const judy = await addUser(server, 'Judy', 'windows');
    const own = await call('GET', `/users/${judy.userid}/devices`, undefined, undefined, { 'ozeki-station': judy.client.station });
    expect(own.status).toBe(200);
    const users = await call('GET', '/users', undefined, undefined, { 'ozeki-station': judy.client.station });
    expect(users.status).toBe(403);
    expect(await errorOf(users)).toMatch(/admin token or a token with the scope users:read/);
    const tokens = await call('GET', '/tokens', undefined, undefined, { 'ozeki-station': judy.client.station });
    expect(tokens.status).toBe(403);
  });

  it('a token can never make, list or revoke tokens, whatever its scopes', async () => {
    const everything = await makeToken({
      name: 'everything',
      scopes: ['notifications:send', 'users:read', 'users:write', 'devices:write', 'feed:read', 'stats:read'],
    });
    const before = await snapshot(server.app.parts.store);
    const create = await call('POST', '/tokens', everything.token, { name: 'child', scopes: ['users:read'] });
    expect(create.status).toBe(403);
    expect(await errorOf(create)).toMatch(/admin token/);
    expect((await call('GET', '/tokens', everything.token)).status).toBe(403);
    expect((await call('DELETE', `/tokens/${everything.id}`, everything.token)).status).toBe(403);
    expect(await snapshot(server.app.parts.store)).toEqual(before);
    expect((await call('GET', '/users', everything.token)).status).toBe(200);
  });

  it('a revoked token is refused at once with 401 "revoked"; an unknown id is 404', async () => {
    const token = await makeToken({ name: 'to-revoke', scopes: ['users:read'] });
    expect((await call('GET', '/users', token.token)).status).toBe(200);

    const revoked = await call('DELETE', `/tokens/${token.id}`, ADMIN_TOKEN);
    expect(revoked.status).toBe(204);
    const refused = await call('GET', '/users', token.token);
    expect(refused.status).toBe(401);
    expect(await errorOf(refused)).toMatch(/revoked/);

    const listed = (await listTokens()).find((t) => t.id === token.id)!;
    expect(listed.revoked).toEqual(expect.any(Number));
    // Revoking again changes nothing, not even the time of the revocation.
    expect((await call('DELETE', `/tokens/${token.id}`, ADMIN_TOKEN)).status).toBe(204);
    expect((await listTokens()).find((t) => t.id === token.id)!.revoked).toBe(listed.revoked);

    const unknown = await call('DELETE', `/tokens/${randomBytes(16).toString('hex')}`, ADMIN_TOKEN);
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toMatch(/no such token/);
  });

  it('an expired token is refused with 401 "expired"', async () => {
    // Made two minutes ago to live one minute: the clock has passed its expiry.
    const token = await createApiToken(
      server.app.parts.store.db,
      { name: 'old', scopes: ['users:read'], expiresIn: 60 },
      Date.now() - 120_000,
    );
    const refused = await call('GET', '/users', token.token);
    expect(refused.status).toBe(401);
    expect(await errorOf(refused)).toMatch(/expired/);
  });

  it('an unknown token gets 401 "unknown token", another bearer a 401 naming both kinds', async () => {
    const unknown = await call('GET', '/users', `hrld_${randomBytes(32).toString('base64url')}`);
    expect(unknown.status).toBe(401);
    expect(await errorOf(unknown)).toBe('unknown token');
    const other = await call('GET', '/users', 'not-a-token');
    expect(other.status).toBe(401);
    expect(await errorOf(other)).toMatch(/neither the admin token nor an API token/);
  });

  it('records the last use at most once a minute', async () => {
    const token = await makeToken({ name: 'busy-sender', scopes: ['users:read'] });
    expect((await call('GET', '/users', token.token)).status).toBe(200);
    const first = (await listTokens()).find((t) => t.id === token.id)!.lastused;
    expect(first).toEqual(expect.any(Number));
    expect((await call('GET', '/users', token.token)).status).toBe(200);
    expect((await listTokens()).find((t) => t.id === token.id)!.lastused).toBe(first);

    const db = server.app.parts.store.db;
    const lastUsed = async () =>
      (await db.selectFrom('api_tokens').select('last_used_at').where('id', '=', token.id).executeTakeFirstOrThrow()).last_used_at;
    expect(await authenticateApiToken(db, token.token, first! + LAST_USE_INTERVAL_MS - 1)).toMatchObject({ ok: true });
    expect(await lastUsed()).toBe(first);
    expect(await authenticateApiToken(db, token.token, first! + LAST_USE_INTERVAL_MS)).toMatchObject({ ok: true });
    expect(await lastUsed()).toBe(first! + LAST_USE_INTERVAL_MS);
  });

  it('refuses a bad token request with 400 and stores nothing', async () => {
    const before = await snapshot(server.app.parts.store);
    const refusals: Array<[unknown, RegExp]> = [
      [
        { name: 'x', scopes: ['users:read', 'users:delete'] },
        /must be one of notifications:send, users:read, users:write, devices:write, feed:read/,
      ],
      [{ name: 'x', scopes: [] }, /scopes/],
      [{ name: 'x' }, /scopes/],
      [{ name: '', scopes: ['users:read'] }, /name/],
      [{ name: '   ', scopes: ['users:read'] }, /name must be a non-empty string of at most 100 characters/],
      [{ name: 'x'.repeat(101), scopes: ['users:read'] }, /name/],
      [{ scopes: ['users:read'] }, /name/],
      [{ name: 'x', scopes: ['users:read'], expiresin: 0 }, /expiresin/],
      [{ name: 'x', scopes: ['users:read'], expiresin: -60 }, /expiresin/],
      [{ name: 'x', scopes: ['users:read'], expiresin: 1.5 }, /expiresin/],
    ];
    for (const [body, message] of refusals) {
      const response = await call('POST', '/tokens', ADMIN_TOKEN, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(await errorOf(response), JSON.stringify(body)).toMatch(message);
    }
    const malformed = await fetch(`${server.http}/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: '{nope',
    });
    expect(malformed.status).toBe(400);
    // Without the admin token the body is never judged: 401, not 400.
    const anonymous = await call('POST', '/tokens', undefined, { name: '', scopes: ['nothing'] });
    expect(anonymous.status).toBe(401);
    expect(await snapshot(server.app.parts.store)).toEqual(before);
  });
});
