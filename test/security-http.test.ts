import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SQLITE } from './helpers/stores.ts';
import { addUser, metricsText, startTestServer, type TestServer } from './helpers/server.ts';
import { ozekiTime } from '../client/ozeki.ts';

describe('the HTTP ports hold up against an anonymous caller', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(SQLITE, { HERALD_REQUEST_TIMEOUT_MS: '1000' });
  });
  afterAll(async () => server?.stop());

  it('made-up Ozeki api names do not each become a new metrics series', async () => {
    const invented = Array.from({ length: 50 }, (_, i) => `invented${i}x${Date.now()}`);
    for (const api of invented) {
      const response = await fetch(`${server.http}/?srv=chatserver&api=${api}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'list', clientversioncode: 3, timestamp: ozekiTime() }),
      });
      expect(response.status).toBe(404);
    }
    const metrics = await metricsText(server);
    for (const api of invented) expect(metrics).not.toContain(api);
    expect(metrics).toMatch(/herald_http_requests_total\{api="ozeki",route="unknown",status="404"\} 50/);
  });

  /** Resolves when the server ends the connection, with what it answered first. */
  function answerOf(socket: net.Socket): Promise<string> {
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString()));
    return new Promise((resolve, reject) => {
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
  }

  it('a request whose body trickles in is cut off after HERALD_REQUEST_TIMEOUT_MS; open WebSockets are not', async () => {
    const alice = await addUser(server, 'Alice');
    const live = new WebSocket(`${server.http.replace('http', 'ws')}/ws?station=${alice.client.station}`);
    const pong = new Promise((resolve) => live.on('message', (data) => JSON.parse(data.toString()).type === 'pong' && resolve(true)));
    await new Promise((resolve) => live.once('open', resolve));

    const { port } = new URL(server.http);
    const slow = net.connect(Number(port), '127.0.0.1');
    const answered = answerOf(slow);
    slow.write('POST /?srv=chatserver&api=chatfriends HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n');
    slow.write('Content-Length: 1000\r\n\r\n{"action":');
    const started = Date.now();
    expect(await answered).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - started).toBeLessThan(5000);

    // The WebSocket's upgrade request is older than the one just cut, and it still answers.
    live.send(JSON.stringify({ type: 'ping' }));
    expect(await pong).toBe(true);
    live.close();
  });
});
