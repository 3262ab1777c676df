import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SQLITE } from './helpers/stores.ts';
import { addUser, metricsText, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { LiveServer } from '../src/channels/live/server.ts';
import { WebSocketChannel } from '../src/channels/websocket.ts';
import { devices } from '../src/chat/services.ts';
import { feedReader } from '../src/notify/feed.ts';

// Long enough that a loaded machine answers a ping before the next one is due.
const PING_MS = 300;

describe('WebSocket liveness', () => {
  let server: TestServer;
  let bob: TestUser;
  let extra: http.Server;
  let live: LiveServer;
  let url: string;

  beforeAll(async () => {
    // Only the channel's own timing is under test here, so SQLite is enough.
    server = await startTestServer(SQLITE);
    bob = await addUser(server, 'Bob');
    // A second listener of the same node, with a ping interval short enough to test.
    extra = http.createServer();
    const { hub, metrics, log, store, bus } = server.app.parts;
    live = new LiveServer([extra], { hub, metrics, log, pingIntervalMs: PING_MS });
    const feed = feedReader(store.db);
    live.register(
      new WebSocketChannel({ feed, devices: devices(store.db, store.secrets, bus), metrics, log, pingIntervalMs: live.pingIntervalMs }),
    );
    await new Promise<void>((resolve) => extra.listen(0, '127.0.0.1', resolve));
    url = `ws://127.0.0.1:${(extra.address() as AddressInfo).port}/ws?station=${bob.client.station}`;
  });
  afterAll(async () => {
    await live?.close();
    await new Promise((resolve) => extra?.close(resolve));
    await server?.stop();
  });

  it('a device that stops answering pings is disconnected', async () => {
    const socket = new WebSocket(url, { autoPong: false });
    const hello = new Promise<{ ping: number }>((resolve) => socket.once('message', (data) => resolve(JSON.parse(data.toString()))));
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    expect((await hello).ping).toBe(PING_MS);
    // Terminated without a close frame: the client sees an abnormal closure.
    expect(await closed).toBe(1006);
  });

  it('a device that answers pings stays connected', async () => {
    const socket = new WebSocket(url);
    let pings = 0;
    await new Promise<void>((resolve, reject) => {
      socket.on('close', (code) => reject(new Error(`disconnected with ${code} after ${pings} pings`)));
      socket.on('ping', () => {
        if (++pings === 3) resolve();
      });
    });
    expect(socket.readyState).toBe(WebSocket.OPEN);
    socket.close();
  });

  it('the live connection gauge follows connections opening and closing', async () => {
    const metrics = () => metricsText(server);
    const socket = new WebSocket(url);
    await new Promise((resolve) => socket.once('message', resolve));
    expect(await metrics()).toMatch(/herald_live_connections\{channel="ws"\} 1\b/);
    const gone = new Promise((resolve) => socket.once('close', resolve));
    socket.close();
    await gone;
    await waitFor(async () => /herald_live_connections\{channel="ws"\} 0\b/.test(await metrics()), 5000, 'the gauge to drop to 0');
  });
});
