import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SQLITE } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { OzekiClient } from '../client/ozeki.ts';

/** Opens a raw WebSocket and resolves with its first frame's type, or with the close code if it is refused. */
function connect(server: TestServer, station: string): Promise<{ socket: WebSocket; outcome: string | number }> {
  const socket = new WebSocket(`${server.app.endpoints.ws}?station=${station}`);
  return new Promise((resolve, reject) => {
    socket.once('message', (data) => resolve({ socket, outcome: JSON.parse(data.toString()).type as string }));
    socket.once('close', (code) => resolve({ socket, outcome: code }));
    socket.once('error', reject);
  });
}

describe('one user cannot open WebSockets without end', () => {
  let server: TestServer;
  let mallory: TestUser;
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    server = await startTestServer(SQLITE);
    mallory = await addUser(server, 'Mallory');
  });
  afterAll(async () => {
    for (const socket of sockets) socket.terminate();
    await server?.stop();
  });

  it('logging in ever more stations does not get past 128 live connections per user (4429)', async () => {
    // 16 per station is the station limit; 8 stations reach the user limit.
    const stations = [mallory.client.station];
    while (stations.length < 9) {
      const client = new OzekiClient(server.http, newStation());
      await client.login(mallory.apikey);
      stations.push(client.station);
    }
    for (const station of stations.slice(0, 8)) {
      const opened = await Promise.all(Array.from({ length: 16 }, () => connect(server, station)));
      for (const { socket, outcome } of opened) {
        sockets.push(socket);
        expect(outcome).toBe('hello');
      }
    }
    const refused = await connect(server, stations[8]);
    sockets.push(refused.socket);
    expect(refused.outcome).toBe(4429);

    // Another user is not affected.
    const alice = await addUser(server, 'Alice');
    const fine = await connect(server, alice.client.station);
    sockets.push(fine.socket);
    expect(fine.outcome).toBe('hello');
  });
});
