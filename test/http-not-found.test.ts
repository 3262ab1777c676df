import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SQLITE } from './helpers/stores.ts';
import { addUser, startTestServer, type TestServer } from './helpers/server.ts';
import { snapshot } from './helpers/snapshot.ts';

describe('an unknown path is 404 and a wrong method 405, each in the error shape of its API', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(SQLITE);
  });
  afterAll(async () => server?.stop());

  const ask = async (method: string, path: string) => {
    const response = await fetch(`${server.http}${path}`, { method });
    return { status: response.status, allow: response.headers.get('allow'), body: (await response.json()) as Record<string, unknown> };
  };

  it('the Ozeki Chat API answers status ERROR with an errormessage', async () => {
    const get = await ask('GET', '/?srv=chatserver&api=chatfriends');
    expect(get).toEqual({ status: 405, allow: 'OPTIONS, POST', body: { status: 'ERROR', errormessage: expect.stringMatching(/POST/) } });
    expect((await ask('PUT', '/ozeki/index.php')).body).toEqual({ status: 'ERROR', errormessage: expect.any(String) });
    expect(await ask('POST', '/ozeki/other.php')).toEqual({
      status: 404,
      allow: null,
      body: { status: 'ERROR', errormessage: 'no Ozeki Chat API endpoint POST /ozeki/other.php' },
    });
  });

  it('Web3MQ answers a code and a msg', async () => {
    expect(await ask('POST', '/api/no_such_call/')).toEqual({
      status: 404,
      allow: null,
      body: { code: 404, msg: 'no Web3MQ endpoint POST /api/no_such_call/' },
    });
    const wrong = await ask('POST', '/api/notification/history/');
    expect(wrong).toEqual({ status: 405, allow: 'GET, HEAD, OPTIONS', body: { code: 405, msg: expect.stringMatching(/GET/) } });
  });

  it('/v1 and every other path answer {"error"}, and a refused method changes nothing', async () => {
    const before = await snapshot(server.app.parts.store);
    expect(await ask('GET', '/v1/nothing-here')).toEqual({
      status: 404,
      allow: null,
      body: { error: 'no native API endpoint GET /v1/nothing-here' },
    });
    const wrong = await ask('PATCH', '/v1/users/someone/devices/0123456789abcdef0123456789abcdef');
    expect(wrong).toEqual({ status: 405, allow: 'DELETE, OPTIONS, PUT', body: { error: expect.stringMatching(/not PATCH/) } });
    expect((await ask('DELETE', '/v1/users')).allow).toBe('GET, HEAD, OPTIONS, POST');
    expect(await ask('GET', '/favicon.ico')).toEqual({ status: 404, allow: null, body: { error: 'no Herald endpoint GET /favicon.ico' } });
    expect(await ask('POST', '/healthz')).toEqual({ status: 405, allow: 'GET, HEAD, OPTIONS', body: { error: expect.any(String) } });
    expect((await snapshot(server.app.parts.store)).counts).toEqual(before.counts);
  });

  it('the Matrix push gateway answers errcode M_UNRECOGNIZED', async () => {
    expect(await ask('POST', '/_matrix/push/v1/nothing')).toEqual({
      status: 404,
      allow: null,
      body: { errcode: 'M_UNRECOGNIZED', error: expect.any(String) },
    });
  });

  it('OPTIONS on a path that exists answers 204 with Allow; on one that does not, 404', async () => {
    const options = await fetch(`${server.http}/v1/users`, { method: 'OPTIONS' });
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('GET, HEAD, OPTIONS, POST');
    expect((await fetch(`${server.http}/v1/nope`, { method: 'OPTIONS' })).status).toBe(404);
  });

  it('/healthz, /metrics and the live sockets at /ws are as before', async () => {
    expect((await fetch(`${server.http}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.http}/metrics`)).status).toBe(401);
    const alice = await addUser(server, 'Alice');
    const live = new WebSocket(`${server.http.replace('http', 'ws')}/ws?station=${alice.client.station}`);
    const pong = new Promise((resolve) => live.on('message', (data) => JSON.parse(data.toString()).type === 'pong' && resolve(true)));
    await new Promise((resolve, reject) => {
      live.once('open', resolve);
      live.once('error', reject);
    });
    live.send(JSON.stringify({ type: 'ping' }));
    expect(await pong).toBe(true);
    live.close();
    // A plain GET to the socket's path is no upgrade: an unknown route.
    expect((await ask('GET', '/ws')).status).toBe(404);
  });
});
