import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SQLITE } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, startTestServer, waitFor, type TestServer } from './helpers/server.ts';
import { openStore } from '../src/store/db.ts';
import { startServeProcess } from './helpers/cli.ts';
import { OzekiClient, ozekiTime } from '../client/ozeki.ts';
import { userKeyOf } from '../src/notify/feed.ts';

describe('operating a node', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(SQLITE);
  });
  afterAll(async () => server?.stop());

  it('GET /healthz answers ok when the database answers', async () => {
    const response = await fetch(`${server.http}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('GET /metrics is for the operator only: without the admin token, or with another, it is refused', async () => {
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer not-the-admin-token' },
      { authorization: `Basic ${ADMIN_TOKEN}` },
    ];
    for (const headers of attempts) {
      const response = await fetch(`${server.http}/metrics`, { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      const body = await response.json();
      expect(body).toEqual({ error: 'send Authorization: Bearer <admin token> to read the metrics' });
    }
  });

  it('GET /metrics counts requests and their latencies per API call, in Prometheus text', async () => {
    const alice = await addUser(server, 'Alice');
    await alice.client.ok('chatconversation', { action: 'list' });
    await alice.client.call('chatconversation', { action: 'nonsense' });
    const response = await fetch(`${server.http}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(response.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await response.text();
    expect(text).toMatch(/herald_http_requests_total\{api="ozeki",route="chatconversation",status="200"\} 1/);
    expect(text).toMatch(/herald_http_requests_total\{api="ozeki",route="chatconversation",status="400"\} 1/);
    expect(text).toMatch(/herald_http_request_duration_seconds_count\{api="ozeki",route="chatlogin"\} 1/);
    expect(text).toMatch(/herald_process_resident_memory_bytes/);
  });

  it('the same API answers over HTTPS with the self-signed certificate made in the data dir', async () => {
    const https = await import('node:https');
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(`${server.https}/healthz`, { ca: server.ca }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    expect(JSON.parse(body)).toEqual({ status: 'ok' });
  });

  it('chatlogin lists the real listener and API URLs of this node', async () => {
    const user = await addUser(server, 'Lister');
    const login = await user.client.login(user.apikey);
    const listeners = login.listeners as Record<string, string>;
    expect(listeners.ws).toBe(`${server.http.replace('http:', 'ws:')}/ws`);
    expect(listeners.wss).toBe(`${server.https.replace('https:', 'wss:')}/ws`);
    expect(listeners.udp).toMatch(/^udp:\/\/127\.0\.0\.1:\d+$/);
    expect((login.urls as Record<string, string>).notification).toBe(`${server.https}/?srv=chatserver&api=chatnotification`);
    expect(login.userid).toBe(user.userid);
  });
});

describe('herald serve', () => {
  it('starts on its embedded defaults and stops cleanly on SIGTERM, closing the database', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-serve-'));
    try {
      const { child, endpoints, output } = await startServeProcess({
        HERALD_DATA_DIR: dataDir,
        HERALD_HTTP_PORT: '0',
        HERALD_HTTPS_PORT: '0',
        HERALD_UDP_PORT: '0',
        HERALD_ADMIN_TOKEN: '',
      });
      // The admin token was generated and printed once; the data dir keeps only its hash.
      const token = /generated an admin token, shown this once .*: ([\w-]+)"/.exec(output())?.[1];
      expect(token).toBeDefined();
      expect(fs.readFileSync(path.join(dataDir, 'admin-token.sha256'), 'utf8').trim()).toBe(
        createHash('sha256').update(token!).digest('hex'),
      );
      expect(fs.existsSync(path.join(dataDir, 'admin-token'))).toBe(false);
      expect(fs.existsSync(path.join(dataDir, 'tls-cert.pem'))).toBe(true);

      const created = await fetch(`${endpoints.http}/v1/users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'serve@example.org', name: 'Serve' }),
      });
      expect(created.status).toBe(201);
      const { apikey } = (await created.json()) as { apikey: string };
      const client = new OzekiClient(endpoints.http, 'a'.repeat(32));
      expect((await client.login(apikey)).status).toBe('OK');
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      // SQLite removes the write-ahead log when the last connection closes cleanly.
      expect(fs.existsSync(path.join(dataDir, 'herald.db'))).toBe(true);
      expect(fs.existsSync(path.join(dataDir, 'herald.db-wal'))).toBe(false);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a request in flight when SIGTERM arrives is still answered, and what it wrote is kept', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-serve-'));
    try {
      const { child, endpoints } = await startServeProcess({
        HERALD_DATA_DIR: dataDir,
        HERALD_HTTP_PORT: '0',
        HERALD_HTTPS_PORT: '0',
        HERALD_UDP_PORT: '0',
        HERALD_ADMIN_TOKEN: ADMIN_TOKEN,
      });
      const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
      const users = [];
      for (const name of ['Ann', 'Ben']) {
        const created = await fetch(`${endpoints.http}/v1/users`, {
          method: 'POST',
          headers: admin,
          body: JSON.stringify({ email: `${name.toLowerCase()}@example.org`, name }),
        });
        users.push((await created.json()) as { userid: string; apikey: string });
      }
      const ann = new OzekiClient(endpoints.http, 'b'.repeat(32));
      await ann.login(users[0].apikey);
      const { conversation } = await ann.createConversation([users[1].userid]);
      const conversationId = (conversation as { id: string }).id;

      // The request's headers reach the server (it answers 100 Continue), then the server is
      // told to stop, and only once it has stopped listening does the body follow.
      const body = JSON.stringify({
        action: 'add',
        timestamp: ozekiTime(),
        conversationid: conversationId,
        message: JSON.stringify({ ID: 'in-flight', Type: 'Message', Created: ozekiTime(), Data: 'aGk=' }),
      });
      const { port } = new URL(endpoints.http);
      const socket = net.connect(Number(port), '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk.toString()));
      const ended = new Promise((resolve) => socket.on('close', resolve));
      socket.write(
        `POST /?srv=chatserver&api=chatconversation HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Ozeki-Station: ${ann.station}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
      );
      await waitFor(() => answer.startsWith('HTTP/1.1 100 Continue'), 5000, '100 Continue');
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await waitFor(() => refusesConnections(Number(port)), 5000, 'the server to stop listening');
      socket.write(body);
      await ended;
      const response = answer.slice(answer.indexOf('\r\n\r\n') + 4);
      expect(response).toMatch(/^HTTP\/1.1 200 OK/);
      expect(JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 'OK', message: { ID: 'in-flight' } });
      const [code] = await exited;
      expect(code).toBe(0);

      // The message and Ben's notification of it were committed before the database closed.
      const store = await openStore({ sqliteFile: path.join(dataDir, 'herald.db') });
      try {
        expect(await store.db.selectFrom('messages').select('id').execute()).toEqual([{ id: 'in-flight' }]);
        const feed = await store.db
          .selectFrom('notifications')
          .select(['type', 'title'])
          .where('user_key', '=', userKeyOf(users[1].userid))
          .execute();
        expect(feed).toContainEqual({ type: 'message', title: '1 message from Ann' });
      } finally {
        await store.close();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

/** True once nothing listens on the port any more. */
function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(port, '127.0.0.1');
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', () => resolve(true));
  });
}
