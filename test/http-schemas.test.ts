import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, newStation, startTestServer, type TestServer } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';

describeEachStore('every /v1 call is checked against the schema beside its handler', (kind) => {
  let server: TestServer;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

  beforeAll(async () => {
    server = await startTestServer(kind);
  });
  afterAll(async () => server?.stop());

  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = admin) => {
    const response = await fetch(`${server.http}/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as { error: string } };
  };

  it('a refused body answers 400 {"error"} naming the field and what it must be, and changes nothing', async () => {
    const before = await snapshot(server.app.parts.store);
    expect(await call('POST', '/users', { email: 'ann@example.org' })).toEqual({
      status: 400,
      body: { error: 'name must be a non-empty string of at most 200 characters' },
    });
    expect(await call('POST', '/users', { email: 42, name: 'Ann' })).toEqual({
      status: 400,
      body: { error: 'email must be a non-empty string' },
    });
    expect(await call('POST', '/users', { email: 'ann@example.org', name: 'Ann', nick: '' })).toEqual({
      status: 400,
      body: { error: 'nick must be a non-empty string of at most 100 characters' },
    });
    expect(await call('POST', '/users', ['ann@example.org'])).toEqual({ status: 400, body: { error: 'the body must be a JSON object' } });
    expect(await call('POST', '/users')).toEqual({ status: 400, body: { error: 'the body must be a JSON object' } });
    expect(await call('POST', '/friends', { a: 'ann@example.org', b: null })).toEqual({
      status: 400,
      body: { error: expect.stringMatching(/^b must be a non-empty string/) },
    });
    expect((await snapshot(server.app.parts.store)).counts).toEqual(before.counts);
  });

  it('a body is taken as sent: a number where text belongs is refused, not turned into text', async () => {
    const bob = await addUser(server, 'Bob');
    const before = await snapshot(server.app.parts.store);
    const station = newStation();
    // Fastify's default validator would have made "42" of it and stored it as a token.
    const asNumber = await call('PUT', `/users/${bob.userid}/devices/${station}`, { platform: 'android', pushtoken: 42 });
    expect(asNumber).toEqual({ status: 400, body: { error: 'pushtoken must be a string of at most 4096 characters or null' } });
    const named = await call('POST', '/users', { email: 'true@example.org', name: true });
    expect(named).toEqual({ status: 400, body: { error: 'name must be a non-empty string of at most 200 characters' } });
    const platform = await call('PUT', `/users/${bob.userid}/devices/${station}`, { platform: 'fridge' });
    expect(platform).toEqual({ status: 400, body: { error: 'platform must be one of browser, windows, mac, linux, android, ios' } });
    expect((await snapshot(server.app.parts.store)).counts).toEqual(before.counts);
  });

  it('who may call is settled before the body is read: a stranger with a bad body gets 401, a user 403', async () => {
    const before = await snapshot(server.app.parts.store);
    const stranger = await call('POST', '/users', { email: 3 }, { 'content-type': 'application/json' });
    expect(stranger.status).toBe(401);
    expect(stranger.body.error).toMatch(/Bearer/);
    const carol = await addUser(server, 'Carol');
    const asUser = await call(
      'POST',
      '/users',
      { email: 3 },
      { 'content-type': 'application/json', 'ozeki-station': carol.client.station },
    );
    expect(asUser.status).toBe(403);
    const foreign = await call(
      'PUT',
      `/users/${carol.userid}/devices/${newStation()}`,
      { platform: 7 },
      { 'content-type': 'application/json' },
    );
    expect(foreign.status).toBe(401);
    expect((await snapshot(server.app.parts.store)).counts).toEqual({
      ...before.counts,
      users: before.counts.users + 1,
      devices: before.counts.devices + 1,
    });
  });

  it('answers keep every field the handlers return', async () => {
    const dave = await addUser(server, 'Dave', 'windows');
    const listed = await call('GET', `/users/${dave.userid}/devices`, undefined, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual({
      devices: [
        {
          station: dave.client.station,
          platform: 'windows',
          push: null,
          ackedseq: 0,
          deliveredseq: 0,
          lastseen: expect.any(Number),
          created: expect.any(Number),
        },
      ],
    });
    const users = (await call('GET', '/users', undefined, { authorization: `Bearer ${ADMIN_TOKEN}` })).body as unknown as {
      users: Array<Record<string, unknown>>;
    };
    expect(users.users.find((u) => u.userid === dave.userid)).toEqual({
      userid: dave.userid,
      email: dave.email,
      name: 'Dave',
      nick: expect.any(String),
      availability: expect.any(String),
      unread: 0,
      created_at: expect.any(Number),
    });
    const removed = await fetch(`${server.http}/v1/users/${dave.userid}/devices/${dave.client.station}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(removed.status).toBe(204);
    expect(await removed.text()).toBe('');
  });
});
