import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, type TestServer, type TestUser } from './helpers/server.ts';
import { WsReceiver } from '../client/ws-receiver.ts';

/** Opens a raw WebSocket and resolves with how the server ended it. */
function closeOf(url: string, options: WebSocket.ClientOptions = {}): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, options);
    socket.on('error', reject);
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

describeEachStore('the WebSocket handshake', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
  });
  afterAll(async () => server?.stop());

  const ws = () => server.app.endpoints.ws;

  it('a connection without a station is refused with 4401 and says what is missing', async () => {
    expect(await closeOf(ws())).toEqual({ code: 4401, reason: 'the station is missing: send the Ozeki-Station header or ?station=' });
  });

  it('an unknown station is refused with 4401, over ws and wss alike', async () => {
    const station = newStation();
    const expected = { code: 4401, reason: 'unknown station: log in with chatlogin first' };
    expect(await closeOf(`${ws()}?station=${station}`)).toEqual(expected);
    expect(await closeOf(server.app.endpoints.wss, { ca: server.ca, headers: { 'Ozeki-Station': station } })).toEqual(expected);
  });

  it("Alice's station claiming to be Bob is refused with 4403", async () => {
    const expected = { code: 4403, reason: 'this station belongs to another user' };
    expect(await closeOf(`${ws()}?station=${alice.client.station}&user=${bob.userid}`)).toEqual(expected);
    const byHeader = await closeOf(ws(), { headers: { 'Ozeki-Station': alice.client.station, 'Ozeki-User': bob.userid } });
    expect(byHeader).toEqual(expected);
  });

  it('a malformed station or since is refused with 4400 and the rule it broke', async () => {
    expect(await closeOf(`${ws()}?station=not-a-station`)).toEqual({ code: 4400, reason: 'the station must be 32 hexadecimal characters' });
    expect(await closeOf(`${ws()}?station=${bob.client.station}&since=-1`)).toEqual({
      code: 4400,
      reason: 'since must be a whole number, 0 or more',
    });
    expect(await closeOf(`${ws()}?station=${bob.client.station}&since=999999`)).toEqual({
      code: 4400,
      reason: expect.stringMatching(/^since 999999 is beyond the last sequence \d+$/),
    });
  });

  it('a path other than /ws is answered 404', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(`${server.http.replace('http', 'ws')}/other?station=${bob.client.station}`);
      socket.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
      socket.on('open', () => reject(new Error('a WebSocket opened on /other')));
      socket.on('error', () => {});
    });
    expect(status).toBe(404);
  });

  it('the receiver reports a refusal and does not try again', async () => {
    const receiver = new WsReceiver({ url: ws(), station: newStation(), minBackoffMs: 10 });
    let reconnects = 0;
    receiver.on('disconnected', () => reconnects++);
    const refused = receiver.next('refused');
    receiver.start();
    expect(await refused).toEqual({ code: 4401, reason: 'unknown station: log in with chatlogin first' });
    expect(reconnects).toBe(0);
  });

  it('a frame the server does not understand is answered with an error frame', async () => {
    const socket = new WebSocket(`${ws()}?station=${bob.client.station}`);
    const frames: Array<{ type: string; message?: string }> = [];
    socket.on('message', (data) => frames.push(JSON.parse(data.toString())));
    await new Promise((resolve) => socket.once('open', resolve));
    const errorFrame = () => frames.find((f) => f.type === 'error');
    socket.send('not json');
    await new Promise<void>((resolve) => socket.on('message', () => errorFrame() && resolve()));
    expect(errorFrame()?.message).toBe('a frame must be a JSON object');
    expect(frames[0].type).toBe('hello');
    socket.close();
  });
});

describeEachStore('stopping a server with connected devices', (kind) => {
  it('connected devices are told the server is shutting down (1001) and the stop does not wait for them', async () => {
    const server = await startTestServer(kind);
    const bob = await addUser(server, 'Bob');
    const socket = new WebSocket(`${server.app.endpoints.ws}?station=${bob.client.station}`);
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    await new Promise((resolve) => socket.once('message', resolve));
    const started = Date.now();
    await server.stop();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await closed).toEqual({ code: 1001, reason: 'server shutting down' });
  });
});
