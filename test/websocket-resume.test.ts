import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { addUser, startTestServer, waitFor, type TestServer, type TestUser } from './helpers/server.ts';
import { connectDevice, type RecordingReceiver } from './helpers/websocket.ts';
import type { NotificationFrame } from '../client/ws-receiver.ts';
import { feedHead } from '../src/notify/feed.ts';

/** Sends `count` messages from `from`, `parallel` requests at a time. */
async function sendMessages(from: TestUser, conversationId: string, prefix: string, count: number, parallel = 1) {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const index = next++;
        await from.client.addMessage(conversationId, `${prefix}-${index}`, 'b3BhcXVl');
      }
    }),
  );
}

function expectConsecutive(frames: Array<{ seq: number }>, first: number, last: number) {
  const seqs = frames.map((f) => f.seq);
  expect(seqs).toEqual(Array.from({ length: last - first + 1 }, (_, i) => first + i));
}

describeEachStore('resuming a WebSocket', (kind) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let conversationId: string;
  const open: RecordingReceiver[] = [];

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await addUser(server, 'Alice');
    bob = await addUser(server, 'Bob');
    conversationId = ((await alice.client.createConversation([bob.userid])).conversation as { id: string }).id;
  });
  afterEach(async () => {
    for (const device of open.splice(0)) device.receiver.close();
    // Each case starts from nothing unread, so titles count from one again.
    await bob.client.viewed(conversationId).catch(() => undefined);
  });
  afterAll(async () => server?.stop());

  async function lastSeqOfBob(): Promise<number> {
    return (await feedHead(server.app.parts.store.db, bob.userid)).lastSeq;
  }

  it('a device that was away gets exactly the 50 messages it missed, in order, then live ones', async () => {
    const before = await connectDevice(server, bob.client.station);
    open.push(before);
    await sendMessages(alice, conversationId, 'first', 1);
    const first = (await waitFor(() => before.frames[0], 5000, 'the first message')) as NotificationFrame;
    expect(first.title).toBe('1 message from Alice');
    before.receiver.close();

    await sendMessages(alice, conversationId, 'missed', 50);
    const after = await connectDevice(server, bob.client.station, { since: first.seq });
    open.push(after);
    expect(after.frames).toHaveLength(50);
    expectConsecutive(after.frames, first.seq + 1, first.seq + 50);
    const missed = after.frames as NotificationFrame[];
    expect(missed.map((f) => f.data.messageid)).toEqual(Array.from({ length: 50 }, (_, i) => `missed-${i}`));
    expect(missed[0].title).toBe('2 messages from Alice');
    expect(missed[49]).toMatchObject({ title: '51 messages from Alice', badge: 51 });

    await sendMessages(alice, conversationId, 'live', 1);
    const live = (await waitFor(() => after.frames[50], 5000, 'the live message')) as NotificationFrame;
    expect(live).toMatchObject({ seq: first.seq + 51, title: '52 messages from Alice' });
    expect(live.data.messageid).toBe('live-0');
  });

  /** Connects Bob's device and cuts its connection three times while a burst arrives. */
  async function deviceCutDuringBurst() {
    const device = await connectDevice(server, bob.client.station);
    open.push(device);
    const counter = { reconnects: 0 };
    device.receiver.on('disconnected', () => counter.reconnects++);
    const cuts = [150, 450, 750];
    device.receiver.on('notification', () => {
      if (device.frames.length === cuts[0]) {
        cuts.shift();
        device.receiver.drop();
      }
    });
    return { device, counter };
  }

  it('a burst of 1,000 messages during reconnects arrives complete, ordered and without duplicates', async () => {
    const startSeq = await lastSeqOfBob();
    const { device, counter } = await deviceCutDuringBurst();
    await sendMessages(alice, conversationId, 'burst', 1000, 8);
    const endSeq = await lastSeqOfBob();
    expect(endSeq - startSeq).toBe(1000);
    await waitFor(() => device.receiver.lastSeq === endSeq, 15_000, 'the whole burst');
    expect(counter.reconnects).toBeGreaterThanOrEqual(1);
    expectConsecutive(device.frames, startSeq + 1, endSeq);
    expect(new Set(device.frames.map((f) => f.id)).size).toBe(1000);
  });

  it('1,000 notifications committed in quick transactions during reconnects arrive complete, ordered and once', async () => {
    const startSeq = await lastSeqOfBob();
    const { device, counter } = await deviceCutDuringBurst();
    const { notifier } = server.app.parts;
    for (let batch = 0; batch < 100; batch++) {
      await notifier.transact((_trx, emit) =>
        emit(Array.from({ length: 10 }, (_, i) => ({ userId: bob.userid, type: 'test' as const, title: `burst ${batch}.${i}` }))),
      );
    }
    const endSeq = startSeq + 1000;
    await waitFor(() => device.receiver.lastSeq === endSeq, 15_000, 'the whole burst');
    expect(counter.reconnects).toBeGreaterThanOrEqual(1);
    expectConsecutive(device.frames, startSeq + 1, endSeq);
    expect(new Set(device.frames.map((f) => f.id)).size).toBe(1000);
  });
});
