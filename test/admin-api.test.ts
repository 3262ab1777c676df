import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, startTestServer, type TestServer } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';

describeEachStore('the native admin API', (kind) => {
  let server: TestServer;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

  beforeAll(async () => {
    server = await startTestServer(kind);
  });
  afterAll(async () => server?.stop());

  const post = (path: string, body: unknown, headers: Record<string, string> = admin) =>
    fetch(`${server.http}/v1${path}`, { method: 'POST', headers, body: JSON.stringify(body) });

  it('creates users, lists them and makes friends', async () => {
    const created = await post('/users', { email: 'Dora@Example.org', name: 'Dora', nick: 'dee' });
    expect(created.status).toBe(201);
    const dora = (await created.json()) as { userid: string; apikey: string };
    const eve = (await (await post('/users', { email: 'eve@example.org', name: 'Eve' })).json()) as { userid: string };
    const friends = await post('/friends', { a: 'dora@example.org', b: eve.userid });
    expect(friends.status).toBe(201);
    const list = (await (await fetch(`${server.http}/v1/users`, { headers: admin })).json()) as {
      users: Array<{ userid: string; email: string }>;
    };
    expect(list.users.map((u) => u.email)).toEqual(expect.arrayContaining(['dora@example.org', 'eve@example.org']));
    const row = await server.app.parts.store.db.selectFrom('friendships').selectAll().where('user_id', '=', eve.userid).execute();
    expect(row.map((r) => r.friend_id)).toEqual([dora.userid]);
  });

  it('refuses a missing or wrong token, a user token, and bad bodies, changing nothing', async () => {
    const before = await snapshot(server.app.parts.store);
    const none = await post('/users', { email: 'x@example.org', name: 'X' }, { 'content-type': 'application/json' });
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: string }).error).toMatch(/Bearer/);
    const wrong = await post('/users', { email: 'x@example.org', name: 'X' }, { ...admin, authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    const user = await addUser(server, 'Frank');
    const asUser = await post(
      '/users',
      { email: 'x@example.org', name: 'X' },
      {
        'content-type': 'application/json',
        'ozeki-station': user.client.station,
      },
    );
    expect(asUser.status).toBe(403);
    const after = await snapshot(server.app.parts.store);
    // Only Frank (created directly) was added.
    expect(after.counts.users).toBe(before.counts.users + 1);

    const noName = await post('/users', { email: 'x@example.org' });
    expect(noName.status).toBe(400);
    expect(((await noName.json()) as { error: string }).error).toMatch(/name must be a non-empty string/);
    const malformed = await fetch(`${server.http}/v1/users`, { method: 'POST', headers: admin, body: '{nope' });
    expect(malformed.status).toBe(400);
    const duplicate = await post('/users', { email: 'dora@example.org', name: 'Dora' });
    expect(duplicate.status).toBe(409);
    expect((await snapshot(server.app.parts.store)).counts).toEqual(after.counts);
  });

  it("a user sees and removes their own devices, never another user's", async () => {
    const grace = await addUser(server, 'Grace', 'windows');
    const heidi = await addUser(server, 'Heidi');
    const own = await fetch(`${server.http}/v1/users/${grace.userid}/devices`, {
      headers: { 'ozeki-station': grace.client.station },
    });
    expect(own.status).toBe(200);
    const devices = ((await own.json()) as { devices: Array<{ station: string; platform: string; ackedseq: number }> }).devices;
    expect(devices).toEqual([expect.objectContaining({ station: grace.client.station, platform: 'windows', ackedseq: 0 })]);

    const foreign = await fetch(`${server.http}/v1/users/${grace.userid}/devices`, {
      headers: { 'ozeki-station': heidi.client.station },
    });
    expect(foreign.status).toBe(403);
    const foreignDelete = await fetch(`${server.http}/v1/users/${grace.userid}/devices/${grace.client.station}`, {
      method: 'DELETE',
      headers: { 'ozeki-station': heidi.client.station },
    });
    expect(foreignDelete.status).toBe(403);

    const removed = await fetch(`${server.http}/v1/users/${grace.userid}/devices/${grace.client.station}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(removed.status).toBe(204);
    const gone = await grace.client.call('chatconversation', { action: 'list' });
    expect(gone.httpStatus).toBe(401);
  });
});
