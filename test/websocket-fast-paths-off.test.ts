import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SQLITE } from './helpers/stores.ts';
import { addUser, newStation, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import { OzekiClient } from '../client/ozeki.ts';
import { CORKING } from '../src/channels/live/cork.ts';
import { FRAME_CACHE } from '../src/channels/live/frame-bytes.ts';
import { WHOLE_FRAMES } from '../src/channels/live/ws-frame.ts';

// The switches are read once when their module loads, so they are set before any import.
vi.hoisted(() => {
  process.env.HERALD_NO_FRAME_CACHE = '1';
  process.env.HERALD_NO_CORK = '1';
  process.env.HERALD_NO_WHOLE_FRAMES = '1';
});

// Only the sending path is under test here, so SQLite is enough.
const sqlite = SQLITE;

describe('live push over WebSocket with HERALD_NO_FRAME_CACHE=1, HERALD_NO_CORK=1 and HERALD_NO_WHOLE_FRAMES=1', () => {
  let server: TestServer;
  let bob: TestUser;
  let browser: RecordingReceiver;
  let laptop: RecordingReceiver;

  beforeAll(async () => {
    server = await startTestServer(sqlite);
    bob = await addUser(server, 'Bob');
    const bobLaptop = new OzekiClient(server.http, newStation());
    await bobLaptop.login(bob.apikey, 'windows');
    browser = await connectDevice(server, bob.client.station);
    laptop = await connectDevice(server, bobLaptop.station, { secure: true });
  });
  afterAll(async () => {
    browser?.receiver.close();
    laptop?.receiver.close();
    await server?.stop();
    delete process.env.HERALD_NO_FRAME_CACHE;
    delete process.env.HERALD_NO_CORK;
    delete process.env.HERALD_NO_WHOLE_FRAMES;
  });

  it('turns the three fast paths off', () => {
    expect(FRAME_CACHE).toBe(false);
    expect(CORKING).toBe(false);
    expect(WHOLE_FRAMES).toBe(false);
  });

  it("a burst committed at once reaches both of Bob's devices complete, in order, each frame intact", async () => {
    const committed = await server.app.parts.notifier.transact((_trx, emit) =>
      emit(Array.from({ length: 50 }, (_, i) => ({ userId: bob.userid, type: 'test' as const, title: `burst ${i}` }))),
    );
    for (const device of [browser, laptop]) {
      await waitFor(() => device.frames.length === committed.length, 5000, 'the whole burst');
      expect(device.frames.map((f) => f.seq)).toEqual(committed.map((n) => n.seq));
      expect(device.frames.map((f) => (f as { title?: string }).title)).toEqual(committed.map((n) => n.title));
    }
  });
});
