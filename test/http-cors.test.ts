import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SQLITE } from './helpers/stores.ts';
import { ADMIN_TOKEN, startTestServer, type TestServer } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';
import { loadConfig } from '../src/config.ts';
import { ozekiTime } from '../client/ozeki.ts';

const CHAT = 'https://chat.example.org';

function corsHeaders(response: Response): Record<string, string> {
  return Object.fromEntries([...response.headers].filter(([name]) => name.startsWith('access-control-')));
}

describe('HERALD_CORS_ORIGINS lets named web pages call the APIs from a browser', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(SQLITE, { HERALD_CORS_ORIGINS: `${CHAT}, http://localhost:8080` });
  });
  afterAll(async () => server?.stop());

  const preflight = (path: string, origin: string, method = 'POST') =>
    fetch(`${server.http}${path}`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'content-type, ozeki-station' },
    });

  it('a preflight from the chat page is answered 204 with the methods, the API headers and how long to keep it', async () => {
    for (const path of ['/?srv=chatserver&api=chatfriends', '/index.php', '/ozeki/index.php', '/api/user_login_v2/', '/v1/users']) {
      const response = await preflight(path, CHAT);
      expect(response.status, path).toBe(204);
      const headers = corsHeaders(response);
      expect(headers['access-control-allow-origin']).toBe(CHAT);
      expect(headers['access-control-allow-methods']).toContain(path.startsWith('/v1') ? 'GET' : 'POST');
      for (const name of [
        'authorization',
        'content-type',
        'ozeki-station',
        'ozeki-signature',
        'idempotency-key',
        'web3mq-request-pubkey',
      ]) {
        expect(headers['access-control-allow-headers'].toLowerCase()).toContain(name);
      }
      expect(Number(headers['access-control-max-age'])).toBeGreaterThan(0);
      expect(response.headers.get('vary')).toMatch(/Origin/);
    }
  });

  it('the answers themselves, refusals included, name the origin so the page can read them', async () => {
    const listed = await fetch(`${server.http}/v1/users`, { headers: { origin: CHAT, authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(listed.status).toBe(200);
    expect(listed.headers.get('access-control-allow-origin')).toBe(CHAT);
    expect(listed.headers.get('vary')).toMatch(/Origin/);
    const refused = await fetch(`${server.http}/v1/users`, { headers: { origin: 'http://localhost:8080' } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe('http://localhost:8080');
    const ozeki = await fetch(`${server.http}/?srv=chatserver&api=chatfriends`, {
      method: 'POST',
      headers: { origin: CHAT, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'list', clientversioncode: 3, timestamp: ozekiTime() }),
    });
    expect(ozeki.status).toBe(401);
    expect(ozeki.headers.get('access-control-allow-origin')).toBe(CHAT);
    const web3mq = await fetch(`${server.http}/api/no_such_call/`, { method: 'POST', headers: { origin: CHAT } });
    expect(web3mq.status).toBe(404);
    expect(web3mq.headers.get('access-control-allow-origin')).toBe(CHAT);
  });

  it('another origin gets no CORS headers, and its calls change nothing', async () => {
    const before = await snapshot(server.app.parts.store);
    const evil = 'https://evil.example.net';
    const ask = await preflight('/v1/users', evil);
    expect(corsHeaders(ask)).toEqual({});
    const call = await fetch(`${server.http}/v1/users`, {
      method: 'POST',
      headers: { origin: evil, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'mallory@example.org', name: 'Mallory' }),
    });
    expect(call.status).toBe(401);
    expect(corsHeaders(call)).toEqual({});
    // The same host under another scheme or port is another origin.
    expect(corsHeaders(await preflight('/v1/users', 'http://chat.example.org'))).toEqual({});
    expect(corsHeaders(await preflight('/v1/users', 'http://localhost:8081'))).toEqual({});
    expect((await snapshot(server.app.parts.store)).counts).toEqual(before.counts);
  });

  it("the operator's endpoints never answer cross-origin", async () => {
    const health = await fetch(`${server.http}/healthz`, { headers: { origin: CHAT } });
    expect(health.status).toBe(200);
    expect(corsHeaders(health)).toEqual({});
    const metrics = await fetch(`${server.http}/metrics`, { headers: { origin: CHAT, authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(metrics.status).toBe(200);
    expect(corsHeaders(metrics)).toEqual({});
  });
});

describe('CORS is off unless configured, and * allows any page', () => {
  let closed: TestServer;
  let open: TestServer;

  beforeAll(async () => {
    [closed, open] = await Promise.all([startTestServer(SQLITE), startTestServer(SQLITE, { HERALD_CORS_ORIGINS: '*' })]);
  });
  afterAll(async () => Promise.all([closed?.stop(), open?.stop()]));

  it('without HERALD_CORS_ORIGINS no answer carries a CORS header', async () => {
    const ask = await fetch(`${closed.http}/v1/users`, {
      method: 'OPTIONS',
      headers: { origin: CHAT, 'access-control-request-method': 'GET' },
    });
    expect(ask.status).toBe(204);
    expect(corsHeaders(ask)).toEqual({});
    expect(ask.headers.get('vary')).toBeNull();
    const key = await fetch(`${closed.http}/v1/webpush/vapid-public-key`, { headers: { origin: CHAT } });
    expect(key.status).toBe(200);
    expect(corsHeaders(key)).toEqual({});
  });

  it('with * every page is named back as the allowed origin', async () => {
    for (const origin of [CHAT, 'http://127.0.0.1:5173']) {
      const key = await fetch(`${open.http}/v1/webpush/vapid-public-key`, { headers: { origin } });
      expect(key.status).toBe(200);
      expect(key.headers.get('access-control-allow-origin')).toBe(origin);
    }
  });

  it('a value that is not a list of origins stops the start, naming the variable', () => {
    for (const bad of ['chat.example.org', 'https://chat.example.org/app', 'ftp://chat.example.org']) {
      expect(() => loadConfig({ HERALD_CORS_ORIGINS: bad })).toThrow(/HERALD_CORS_ORIGINS/);
    }
    expect(loadConfig({ HERALD_CORS_ORIGINS: ' https://Chat.Example.org/ ,*' }).corsOrigins).toEqual(['https://chat.example.org', '*']);
    expect(loadConfig({}).corsOrigins).toEqual([]);
  });
});
