import os from 'node:os';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../src/store/db.ts';
import { LocalBus } from '../src/cluster/bus.ts';
import { Notifier } from '../src/notify/notifier.ts';
import { startOutbox, type Outbox } from '../src/notify/outbox.ts';
import { SqlDeliveryStore, type ClaimedDelivery } from '../src/store/deliveries.ts';
import { createUser } from '../src/chat/users.ts';
import { bindStation, registerDevice } from '../src/chat/devices.ts';
import type { PushChannel, PushTarget, SendOutcome } from '../src/model/channel.ts';
import type { Notification } from '../src/model/notification.ts';
import { newStation, waitFor } from './helpers/server.ts';
import { apnsToken } from './mocks/push-env.ts';

/** The APNs channel's place in the outbox. `answer: false` keeps every push in flight (a node about to die). */
class RecordingChannel implements PushChannel {
  readonly provider = 'apns' as const;
  readonly sent: Array<{ target: PushTarget; notification: Notification }> = [];
  private readonly unanswered: Array<() => void> = [];
  constructor(private readonly answer = true) {}
  send<C>(target: PushTarget, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void {
    this.sent.push({ target, notification });
    if (this.answer) queueMicrotask(() => done({ kind: 'delivered' }, context));
    else this.unanswered.push(() => done({ kind: 'delivered' }, context));
  }
  /** Answers, late, what it kept: delivered. */
  answerLate(): void {
    for (const answer of this.unanswered.splice(0)) answer();
  }
  async close(): Promise<void> {
    this.answerLate();
  }
}

/** A lease owner naming a process of this host that does not run (above any pid_max). */
const DEAD_OWNER = `${os.hostname().slice(0, 40)}/4194305/gone`;

/**
 * The outbox rows a node commits are written already leased to its dispatcher and handed to
 * it with the commit, so no claim statement runs for them. Delivery stays at least once: rows
 * left leased by a node that died go out after the restart (dead-process release) or when
 * their lease runs out, each exactly once.
 */
describe('outbox rows written leased to the committing node', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setUp(): Promise<{ store: Store; notifier: Notifier }> {
    const store = await openStore({ sqliteFile: ':memory:' });
    cleanups.push(() => store.close());
    // The presence-aware hold is on, as by default: Bob is in use nowhere, so nothing is held.
    const notifier = new Notifier(store, new LocalBus(), undefined, undefined, { holdMs: 10_000, activeWindowMs: 60_000 });
    return { store, notifier };
  }

  async function dispatcher(store: Store, channel: PushChannel, claimed: ClaimedDelivery[] = []): Promise<Outbox> {
    const deliveries = new SqlDeliveryStore(store.db, store.dialect);
    const claimDue = deliveries.claimDue.bind(deliveries);
    deliveries.claimDue = async (...args) => {
      const rows = await claimDue(...args);
      claimed.push(...rows);
      return rows;
    };
    const outbox = await startOutbox({ deliveries, channels: [channel], log: pino({ level: 'silent' }), pushes: { inc: () => {} } });
    cleanups.push(() => outbox.close());
    return outbox;
  }

  /** Wires the notifier to the dispatcher as app.ts does. */
  function handOver(notifier: Notifier, outbox: Outbox): void {
    notifier.leasePushesTo(() => outbox.lease());
    notifier.onCommitted((notifications, _queued, _held, leased) => {
      outbox.remember(notifications);
      outbox.take(leased);
      outbox.kick();
    });
  }

  async function bobWithPhones(store: Store, phones: number): Promise<{ userId: string; tokens: string[] }> {
    const { userid } = await createUser(store.db, store.secrets, { email: `bob-${newStation()}@example.org`, name: 'Bob' });
    const tokens: string[] = [];
    for (let i = 0; i < phones; i++) {
      const station = newStation();
      const token = apnsToken();
      await bindStation(store.db, store.secrets, station, userid, 'ios');
      await registerDevice(store.db, station, userid, { platform: 'ios', pushToken: token });
      tokens.push(token);
    }
    return { userId: userid, tokens };
  }

  async function message(notifier: Notifier, userId: string): Promise<Notification> {
    const [notification] = await notifier.transact((_trx, emit) =>
      emit([{ userId, type: 'message', title: '2 messages from Ann', body: 'in "Team"', unread: 1, data: { messageid: 'm-1' } }]),
    );
    return notification;
  }

  const rowsOf = (store: Store, notification: Notification) =>
    store.db.selectFrom('deliveries').select(['state', 'attempts', 'lease_owner']).where('notification_id', '=', notification.id).execute();

  const tokensSent = (channel: RecordingChannel, notification: Notification) =>
    channel.sent
      .filter((s) => s.notification.id === notification.id)
      .map((s) => s.target.token)
      .sort();

  it("Bob's three phones get the message this node committed without a claim taking any of its rows", async () => {
    const { store, notifier } = await setUp();
    const channel = new RecordingChannel();
    const claimed: ClaimedDelivery[] = [];
    handOver(notifier, await dispatcher(store, channel, claimed));
    const bob = await bobWithPhones(store, 3);
    const notification = await message(notifier, bob.userId);
    await waitFor(() => tokensSent(channel, notification).length === 3 || undefined, 5000, "Bob's three pushes");
    expect(tokensSent(channel, notification)).toEqual([...bob.tokens].sort());
    expect(claimed.filter((row) => row.notification_id === notification.id)).toEqual([]);
    await waitFor(async () => (await rowsOf(store, notification)).every((r) => r.state === 'delivered') || undefined, 5000, 'delivered');
    // One attempt each, counted when they were written leased.
    expect((await rowsOf(store, notification)).map((r) => r.attempts)).toEqual([1, 1, 1]);
  });

  it('a node killed after its commit, before it sent anything: after the restart every push goes out exactly once', async () => {
    const { store, notifier } = await setUp();
    // The killed process: its commit wrote the rows leased to it, and it never read them.
    notifier.leasePushesTo(() => ({ owner: DEAD_OWNER, until: Date.now() + 60_000, providers: ['apns'] }));
    const bob = await bobWithPhones(store, 3);
    const notification = await message(notifier, bob.userId);
    expect(await rowsOf(store, notification)).toEqual(Array(3).fill({ state: 'pending', attempts: 1, lease_owner: DEAD_OWNER }));

    // The restarted node finds the dead process's rows at its start, long before their lease ends.
    const channel = new RecordingChannel();
    await dispatcher(store, channel);
    await waitFor(() => tokensSent(channel, notification).length === 3 || undefined, 5000, "Bob's three pushes");
    await waitFor(async () => (await rowsOf(store, notification)).every((r) => r.state === 'delivered') || undefined, 5000, 'delivered');
    expect(tokensSent(channel, notification)).toEqual([...bob.tokens].sort());
    expect((await rowsOf(store, notification)).map((r) => r.attempts)).toEqual([2, 2, 2]);
  });

  it("a node whose lease runs out while its pushes are in flight: another node sends each once, and the first one's late answers change nothing", async () => {
    const { store, notifier } = await setUp();
    const stalled = new RecordingChannel(false);
    handOver(notifier, await dispatcher(store, stalled));
    const bob = await bobWithPhones(store, 3);
    const notification = await message(notifier, bob.userId);
    await waitFor(() => tokensSent(stalled, notification).length === 3 || undefined, 5000, 'the pushes in flight on the first node');

    // The first node stops renewing (cut off from the database): its lease runs out.
    const past = Date.now() - 1;
    await store.db
      .updateTable('deliveries')
      .set({ lease_until: past, next_attempt_at: past })
      .where('notification_id', '=', notification.id)
      .execute();
    const channel = new RecordingChannel();
    (await dispatcher(store, channel)).kick();
    await waitFor(() => tokensSent(channel, notification).length === 3 || undefined, 5000, "Bob's three pushes from the second node");
    await waitFor(async () => (await rowsOf(store, notification)).every((r) => r.state === 'delivered') || undefined, 5000, 'delivered');

    stalled.answerLate();
    expect(tokensSent(channel, notification)).toEqual([...bob.tokens].sort());
    expect((await rowsOf(store, notification)).map((r) => r.attempts)).toEqual([2, 2, 2]);
  });
});
