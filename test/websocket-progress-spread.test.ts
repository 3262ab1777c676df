import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { OzekiClient } from '../client/ozeki.ts';

/**
 * Delivery progress of devices that do not acknowledge is written in turns: each 200 ms
 * batch takes a tenth of the connections, so every device is recorded within about 2 s and
 * no batch writes all of them at once (that held up message traffic behind one large write).
 */
const DEVICES = 20;

describeEachStore('WebSocket delivery progress', (kind) => {
  let server: TestServer;
  let bob: TestUser;
  const stations: string[] = [];
  const sockets: WebSocket[] = [];
  const frames = new Map<string, number>();

  beforeAll(async () => {
    server = await startTestServer(kind);
    bob = await addUser(server, 'Bob');
    for (let i = 0; i < DEVICES; i++) {
      const client = new OzekiClient(server.http, newStation());
      await client.login(bob.apikey, 'windows');
      stations.push(client.station);
    }
    const wsUrl = server.http.replace(/^http/, 'ws');
    for (const station of stations) {
      const socket = new WebSocket(`${wsUrl}/ws?station=${station}`, { perMessageDeflate: false });
      sockets.push(socket);
      // This client never acknowledges: only delivery progress is there to write.
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.on('message', (data: Buffer) => {
          const frame = JSON.parse(data.toString()) as { type: string; seq?: number };
          if (frame.type === 'synced') resolve();
          if (frame.type === 'notification') frames.set(station, frame.seq!);
        });
      });
    }
  });
  afterAll(async () => {
    for (const socket of sockets) socket.close();
    await server?.stop();
  });

  it('is written for every device within about 2 s, a share of them at a time', async () => {
    const db = server.app.parts.store.db;
    const [notification] = await server.app.parts.notifier.transact((_trx, emit) =>
      emit([{ userId: bob.userid, type: 'message', conversationId: 'c1', senderId: null, title: '1 message from Alice', unread: 1 }]),
    );
    await waitFor(() => frames.size === DEVICES, 5000, 'every device to get the frame');
    const sentAt = Date.now();
    expect([...frames.values()].every((seq) => seq === notification.seq)).toBe(true);

    // When each device's delivery progress appears in the database.
    const recordedAt = new Map<string, number>();
    await waitFor(
      async () => {
        const rows = await db
          .selectFrom('devices')
          .select(['station', 'delivered_seq', 'acked_seq'])
          .where('user_id', '=', bob.userid)
          .execute();
        const now = Date.now();
        for (const row of rows) {
          expect(row.acked_seq).toBe(0);
          if (row.delivered_seq >= notification.seq && !recordedAt.has(row.station)) recordedAt.set(row.station, now);
        }
        return recordedAt.size === DEVICES;
      },
      5000,
      'the delivery progress of every device',
    );
    const times = [...recordedAt.values()].sort((a, b) => a - b);
    expect(times[times.length - 1] - sentAt).toBeLessThan(3000);
    // Batches are 200 ms apart: count the moments at which devices were recorded.
    const moments = times.filter((t, i) => i === 0 || t - times[i - 1] > 100).length;
    expect(moments).toBeGreaterThanOrEqual(5);
  });
});
