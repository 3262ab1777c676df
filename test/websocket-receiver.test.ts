import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { WsReceiver } from '../client/ws-receiver.ts';
import { waitFor } from './helpers/server.ts';

const STATION = 'ab'.repeat(16);

/**
 * A server that speaks the first frames of Herald's protocol and then goes silent (no
 * pings), as a server behind a dead network path would: only the receiver can notice.
 */
describe('the WebSocket receiver', () => {
  let wss: WebSocketServer;
  let url: string;
  const requests: URL[] = [];
  const acks: Array<{ type: string; seq: number }> = [];

  beforeAll(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => wss.once('listening', resolve));
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws`;
    wss.on('connection', (socket: WebSocket, request) => {
      const asked = new URL(request.url!, url);
      requests.push(asked);
      socket.on('message', (data) => acks.push(JSON.parse(data.toString())));
      const since = Number(asked.searchParams.get('since') ?? 7);
      socket.send(JSON.stringify({ type: 'hello', userid: 'u', station: STATION, since, lastseq: since, badge: 0, ping: 40 }));
      socket.send(JSON.stringify({ type: 'synced', seq: since }));
      socket.send(JSON.stringify({ type: 'clean', seq: since + 1, id: `n${since + 1}`, badge: 0, conversationid: null, created: 0 }));
      socket.ping(); // one ping, then silence
    });
  });
  afterAll(async () => {
    for (const client of wss?.clients ?? []) client.terminate();
    await new Promise((resolve) => wss?.close(resolve));
  });

  it('gives up on a server that stops pinging, reconnects and resumes after the last sequence it saw', async () => {
    const receiver = new WsReceiver({ url, station: STATION, minBackoffMs: 10 });
    const disconnected = receiver.next('disconnected', () => true, 5000);
    receiver.start();
    expect((await disconnected).code).toBe(1006);
    await waitFor(() => requests.length >= 2, 5000, 'the reconnect');
    receiver.close();
    expect(requests[0].searchParams.get('station')).toBe(STATION);
    expect(requests[0].searchParams.has('since')).toBe(false);
    // The first connection ended after seq 8 (since 7 + one clean frame).
    expect(requests[1].searchParams.get('since')).toBe('8');
    expect(acks).toContainEqual({ type: 'ack', seq: 8 });
  });
});
