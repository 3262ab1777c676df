import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { connectDevice } from './helpers/websocket.ts';
import { appendNotifications } from '../src/notify/feed.ts';
import type { Notification } from '../src/model/notification.ts';

describeEachStore('the order of live WebSocket frames', (kind) => {
  let server: TestServer;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTestServer(kind);
    bob = await addUser(server, 'Bob');
  });
  afterAll(async () => server?.stop());

  /** Commits test notifications for Bob without handing them to the hub. */
  async function commitQuietly(count: number): Promise<Notification[]> {
    return server.app.parts.store.db.transaction().execute((trx) =>
      appendNotifications(
        trx,
        Array.from({ length: count }, (_, i) => ({ userId: bob.userid, type: 'test' as const, title: `test ${i}` })),
        { bulk: server.app.parts.store.bulk },
      ),
    );
  }

  it('notifications that reach the server out of order still reach the device in sequence order', async () => {
    const device = await connectDevice(server, bob.client.station);
    const committed = await commitQuietly(5);
    await server.app.parts.notifier.publish([...committed].reverse());
    await waitFor(() => device.frames.length === 5, 5000, 'five frames');
    expect(device.frames.map((f) => f.seq)).toEqual(committed.map((n) => n.seq));
    device.receiver.close();
  });

  it('a notification whose live hand-over was lost is read from the feed, so the device sees no gap', async () => {
    const device = await connectDevice(server, bob.client.station);
    const committed = await commitQuietly(3);
    // Only the last one is handed over live (as when a bus message between nodes is lost).
    await server.app.parts.notifier.publish(committed.slice(2));
    await waitFor(() => device.frames.length === 3, 5000, 'the missing frames to be read from the feed');
    expect(device.frames.map((f) => f.id)).toEqual(committed.map((n) => n.id));
    device.receiver.close();
  });

  it('notifications committed while a long replay runs follow it, each exactly once', async () => {
    const backlog = await commitQuietly(1200);
    const since = backlog[0].seq - 1;
    // The moment the connection is registered (before the feed is read), new notifications
    // are committed and handed over, so they land in the middle of the paged replay.
    const hub = server.app.parts.hub;
    const register = hub.add.bind(hub);
    const duringReplay: Promise<Notification[]>[] = [];
    hub.add = (connection) => {
      register(connection);
      hub.add = register;
      for (let i = 0; i < 3; i++) {
        duringReplay.push(
          commitQuietly(2).then(async (notifications) => {
            await server.app.parts.notifier.publish(notifications);
            return notifications;
          }),
        );
      }
    };
    const device = await connectDevice(server, bob.client.station, { since });
    // Concurrent commits may finish in any order; their sequence numbers say which came first.
    const live = (await Promise.all(duringReplay)).flat().sort((a, b) => a.seq - b.seq);
    const lastSeq = live[live.length - 1].seq;
    await waitFor(() => device.receiver.lastSeq === lastSeq, 5000, 'the frames committed during the replay');
    expect(device.frames.map((f) => f.seq)).toEqual(Array.from({ length: lastSeq - since }, (_, i) => since + 1 + i));
    expect(device.frames.slice(-6).map((f) => f.id)).toEqual(live.map((n) => n.id));
    device.receiver.close();
  });

  it('notifications handed over twice reach the device once', async () => {
    const device = await connectDevice(server, bob.client.station);
    const committed = await commitQuietly(2);
    await server.app.parts.notifier.publish(committed);
    await server.app.parts.notifier.publish(committed);
    const [next] = await commitQuietly(1);
    await server.app.parts.notifier.publish([next]);
    await waitFor(() => device.receiver.lastSeq === next.seq, 5000, 'the last frame');
    expect(device.frames.map((f) => f.seq)).toEqual([...committed, next].map((n) => n.seq));
    device.receiver.close();
  });
});
