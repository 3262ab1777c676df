import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../src/store/db.ts';
import { LocalBus } from '../src/cluster/bus.ts';
import { Notifier } from '../src/notify/notifier.ts';
import { startOutbox, type Outbox } from '../src/notify/outbox.ts';
import { SqlDeliveryStore } from '../src/store/deliveries.ts';
import { readFeed } from '../src/notify/feed.ts';
import { createUser } from '../src/chat/users.ts';
import { bindStation, registerDevice } from '../src/chat/devices.ts';
import type { PushChannel, PushTarget, SendOutcome } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';
import { newStation, waitFor } from './helpers/server.ts';
import { apnsToken } from './mocks/push-env.ts';

/** The APNs channel's place in the outbox: takes every push and says it was delivered. */
class AcceptingChannel implements PushChannel {
  readonly provider = 'apns' as const;
  readonly sent: Array<{ target: PushTarget; notification: Notification }> = [];
  send<C>(target: PushTarget, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void {
    this.sent.push({ target, notification });
    queueMicrotask(() => done({ kind: 'delivered' }, context));
  }
  async close(): Promise<void> {}
}

/**
 * The outbox builds a push from the notification this node just committed, without reading
 * its feed row back; a row it was not told of (another node's, or one committed before a
 * restart) is read from the feed. The push is the same either way.
 */
describe('notifications remembered by the outbox', () => {
  let store: Store;
  let notifier: Notifier;
  let outbox: Outbox;
  const channel = new AcceptingChannel();
  /** The feed rows the outbox asked for, [user key, seq] each. */
  const feedReads: Array<[number, number]> = [];

  beforeAll(async () => {
    store = await openStore({ sqliteFile: ':memory:' });
    notifier = new Notifier(store, new LocalBus());
    const deliveries = new SqlDeliveryStore(store.db, store.dialect);
    const feedRows = deliveries.feedRows.bind(deliveries);
    deliveries.feedRows = (wanted) => {
      feedReads.push(...wanted);
      return feedRows(wanted);
    };
    outbox = await startOutbox({ deliveries, channels: [channel], log: pino({ level: 'silent' }), pushes: { inc: () => {} } });
  });
  afterAll(async () => {
    await outbox?.close();
    await store?.close();
  });

  async function bobWithPhone(): Promise<{ userId: string; station: string }> {
    const { userid } = await createUser(store.db, store.secrets, { email: `bob-${newStation()}@example.org`, name: 'Bob' });
    const station = newStation();
    await bindStation(store.db, store.secrets, station, userid, 'ios');
    await registerDevice(store.db, station, userid, { platform: 'ios', pushToken: apnsToken() });
    return { userId: userid, station };
  }

  async function message(userId: string): Promise<Notification> {
    const [notification] = await notifier.transact((_trx, emit) =>
      emit([{ userId, type: 'message', title: '2 messages from Ann', body: 'in "Team"', unread: 1, data: { messageid: 'm-1' } }]),
    );
    return notification;
  }

  const pushOf = (notification: Notification) => channel.sent.find((s) => s.notification.id === notification.id);

  it('pushes a notification it was told of without reading its feed row', async () => {
    const bob = await bobWithPhone();
    const notification = await message(bob.userId);
    outbox.remember([notification]);
    outbox.kick();
    const push = await waitFor(() => pushOf(notification), 5000, "Bob's push");
    expect(push.target.station).toBe(bob.station);
    expect(feedReads).toEqual([]);
    // The same notification as its feed row.
    expect(push.notification).toEqual((await readFeed(store.db, bob.userId, 0))[0]);
  });

  it('reads the feed row of a notification it was not told of, and pushes the same', async () => {
    const bob = await bobWithPhone();
    const notification = await message(bob.userId);
    outbox.kick();
    const push = await waitFor(() => pushOf(notification), 5000, "Bob's push");
    expect(feedReads).toHaveLength(1);
    expect(push.notification).toEqual(notification);
  });

  it("does not take a remembered notification for another user's row", async () => {
    const bob = await bobWithPhone();
    const notification = await message(bob.userId);
    // Told of under another user's name: the row's user decides, so the feed is read.
    outbox.remember([{ ...notification, userId: 'someone-else' }]);
    const before = feedReads.length;
    outbox.kick();
    const push = await waitFor(() => pushOf(notification), 5000, "Bob's push");
    expect(feedReads.length).toBe(before + 1);
    expect(push.notification.userId).toBe(bob.userId);
  });
});
