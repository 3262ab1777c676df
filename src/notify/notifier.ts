import type { Transaction } from 'kysely';
import type { Bus } from '../cluster/bus.ts';
import type { Store } from '../store/db.ts';
import type { Database } from '../store/schema.ts';
import { appendNotifications, type AppendOptions, type PushHoldPolicy } from './feed.ts';
import type { Notification, NotificationDraft } from '../model/notification.ts';
import type { Silencer } from './preferences.ts';
import type { LeasedRows, PushLease } from '../store/bulk.ts';
import { HeraldError } from '../errors.ts';

export type Emit = (drafts: NotificationDraft[], options?: Pick<AppendOptions, 'now' | 'heads'>) => Promise<Notification[]>;

export type Work<T> = (trx: Transaction<Database>, emit: Emit) => Promise<T>;

/** PostgreSQL deadlock and serialization failures: the work is safe to run again. */
const RETRYABLE_PG_CODES = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 5;

/**
 * How many units of work one transaction may carry. After a stall of the event loop dozens of
 * requests wait at once; in batches of 8 the first of them are answered (and their frames
 * sent) while the rest are still being written, instead of all at the end of one long
 * transaction. A commit costs ~80 µs against ~400 µs of work per message, so 8 already
 * spreads it thin. Latency bench, two alternations of 3 runs: max 42–54 ms against 54–76 ms
 * with 64.
 */
const MAX_BATCH = 8;
/**
 * SQLite: a transaction that has worked this long takes no more of its batch, commits, and
 * publishes; the rest of the batch runs right after it, before requests that came meanwhile
 * are read. A unit's frames go out only after its transaction commits, so in a batch of 8
 * one-to-one messages (~0.3–0.5 ms each) the first one's frame waited for the other seven;
 * a commit costs ~80 µs. (On PostgreSQL a transaction's time is mostly round trips, and
 * several run side by side: there batches are not cut.)
 *
 * A batch is cut only before a unit of another conversation (key) than its first: messages
 * of one conversation go to the same devices, and committed together their frames leave in
 * one write per socket (live/cork.ts) instead of one per message. A burst into a group of
 * 2,000 works ~10 ms a message, so cutting it would cost a system call per delivery.
 */
const BATCH_WORK_MS = 1;

interface Unit {
  work: Work<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  attempts: number;
  produced: Notification[];
  /** Outbox rows the unit wrote, and how many of them are held. */
  pushesQueued: number;
  pushesHeld: number;
  /** Of those, the ones written leased to this node's dispatcher. */
  pushesLeased: LeasedRows[];
  result?: unknown;
  error?: unknown;
  /** Runs in a transaction of its own (after a batch without savepoints failed). */
  alone?: boolean;
  /** What the work writes to most (see transact). */
  key?: string;
  /** performance.now() when it was handed in. */
  queuedAt: number;
}

/** A unit of a batch without savepoints failed: the batch is rolled back and its units run alone. */
class SplitBatch extends Error {}

/** Keyed units first, in key order; keyless ones after them, in queue order. */
function byKey(a: Unit, b: Unit): number {
  if (a.key === b.key) return 0;
  if (a.key === undefined) return 1;
  if (b.key === undefined) return -1;
  return a.key < b.key ? -1 : 1;
}

function isRetryable(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code !== undefined && RETRYABLE_PG_CODES.has(code);
}

/**
 * One transaction's times, ms (the bench reads them): how long its oldest unit waited for it,
 * from BEGIN to the end of COMMIT, and the publishing of its notifications after that.
 */
export interface BatchTimes {
  units: number;
  /** Each unit's time from transact() to the end of its transaction's publishing. */
  unitsMs: number[];
  waitedMs: number;
  workMs: number;
  publishMs: number;
}

/**
 * What a commit published: its notifications, how many push deliveries it queued, how many of
 * those are held, and the ids of those written leased to the dispatcher (see leasePushesTo).
 */
export type CommittedListener = (
  notifications: Notification[],
  pushesQueued: number,
  pushesHeld: number,
  pushesLeased: LeasedRows[],
) => void;

/**
 * The one way state changes that notify someone are written: the change and its
 * notifications (with their outbox rows) commit together, and only then are the
 * notifications published to live connections and the push dispatcher.
 *
 * Writes are group-committed: work that arrives while a transaction is running waits and
 * then shares the next transaction, each unit inside a savepoint of its own, so a burst of
 * messages costs one commit and touches each recipient's feed pages once, while a failing
 * unit still fails alone.
 */
export class Notifier {
  private committedListeners: CommittedListener[] = [];
  private batchListeners: ((times: BatchTimes) => void)[] = [];
  private pushLease?: () => PushLease | undefined;
  private queue: Unit[] = [];
  private draining = false;
  /** Wakes the drain loop while it waits for a running transaction to end: work arrived, or keys were given back. */
  private wake?: () => void;
  /** Committed transactions that wait for the drain loop to start the next one before they publish. */
  private startWaiters: (() => void)[] = [];
  /** Settles once the last commit so far has published (undefined when it has). */
  private lastPublish?: Promise<void>;
  /** Keys of the units in running transactions, with how many of them hold each. */
  private busyKeys = new Map<string, number>();
  private closing = false;
  /** Who waits in close() for the queue to empty. */
  private drained: (() => void)[] = [];
  /** Units of a cut batch wait at the head of the queue: the next transaction starts without a turn of the event loop. */
  private resumeCut = false;

  constructor(
    readonly store: Store,
    private readonly bus: Bus,
    /**
     * Told when publishing fails after commit. The notifications are durable by then, so
     * the call still succeeds: devices get them on resume, and pushes from the outbox.
     */
    private readonly onPublishError: (error: unknown) => void = () => {},
    /** Users' alert preferences, applied to every notification as it is made. */
    private readonly silencer?: Silencer,
    /** Alerting pushes to a user who is in use wait this long (presence-aware hold); none when unset. */
    private readonly pushHold?: PushHoldPolicy,
  ) {}

  /** Called after every commit that produced notifications (the outbox dispatcher wakes on it). */
  onCommitted(listener: CommittedListener): void {
    this.committedListeners.push(listener);
  }

  /** Called after every transaction with its times (see BatchTimes). */
  onBatchTimed(listener: (times: BatchTimes) => void): void {
    this.batchListeners.push(listener);
  }

  /**
   * Outbox rows are written leased to the dispatcher `lease` names at the time (none when it
   * gives none), and handed to it with the commit (CommittedListener's `pushesLeased`), so it
   * need not claim them. A listener given leased rows must take them: nothing else sends them
   * before their lease runs out.
   */
  leasePushesTo(lease: () => PushLease | undefined): void {
    this.pushLease = lease;
  }

  /**
   * Runs `work` in a transaction, and publishes its notifications once it committed. `key`
   * names the rows the work writes to most (a conversation): when transactions run side by
   * side, work of one key never runs in two at once, so it neither waits for the other's
   * row locks nor deadlocks with it, and commits in the order it was handed in.
   */
  transact<T>(work: Work<T>, key?: string): Promise<T> {
    if (this.closing) return Promise.reject(new HeraldError(503, 'the server is stopping; try again shortly'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        key,
        work: work as Work<unknown>,
        resolve: resolve as (value: unknown) => void,
        reject,
        attempts: 0,
        produced: [],
        pushesQueued: 0,
        pushesHeld: 0,
        pushesLeased: [],
        queuedAt: performance.now(),
      });
      if (!this.draining) void this.drain();
      else this.wake?.();
    });
  }

  /**
   * Refuses new work (503) and resolves once every transaction already queued has committed
   * or failed, so the node can close its database after it: no batch runs against a closed
   * pool, and nothing accepted is dropped.
   */
  async close(): Promise<void> {
    this.closing = true;
    while (this.draining) await new Promise<void>((resolve) => this.drained.push(resolve));
  }

  private async drain(): Promise<void> {
    this.draining = true;
    const running = new Set<Promise<void>>();
    /** Waits for one of the running transactions to end, for work, or for keys given back. */
    const wait = async () => {
      // A transaction that gave its keys back waits for this loop to start the next one (or
      // to find that it cannot): it is told before every wait.
      for (const resolve of this.startWaiters.splice(0)) resolve();
      await Promise.race([...running, new Promise<void>((resolve) => (this.wake = resolve))]);
      this.wake = undefined;
    };
    try {
      while (this.queue.length > 0 || running.size > 0) {
        // Work that arrives while a transaction runs starts another one beside it, up to
        // Store.writers; past that it waits and shares the next (one commit for a burst).
        // Waiting for the running one unless a full batch was queued let one transaction that
        // stalled (a slow fsync, a backend off the CPU) hold every message behind it: latency
        // bench, PostgreSQL, 200 messages/s, p99 89-237 ms that way, 12-30 ms this way.
        const room = running.size === 0 || (running.size < this.store.writers && this.queue.length > 0);
        if (!room) {
          await wait();
          continue;
        }
        // One turn of the event loop first: requests already received but not yet parsed
        // (SQLite work is synchronous, so they wait behind us) join this transaction. Not
        // after a cut batch (see BATCH_WORK_MS): its units have waited their turn already.
        if (this.resumeCut) this.resumeCut = false;
        else await new Promise<void>((resolve) => setImmediate(resolve));
        // SQLite: past its bound the log is first copied into the database, so this
        // transaction starts it over (see Store.logRoom).
        const logRoom = this.store.logRoom?.();
        if (logRoom) await logRoom;
        const batch = this.takeBatch();
        if (batch.length === 0) {
          // Everything queued waits for a key a running transaction holds.
          if (running.size > 0) await wait();
          continue;
        }
        const keys = batch.flatMap((unit) => (unit.key === undefined ? [] : [unit.key]));
        for (const key of keys) this.busyKeys.set(key, (this.busyKeys.get(key) ?? 0) + 1);
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          for (const key of keys) {
            const left = this.busyKeys.get(key)! - 1;
            if (left === 0) this.busyKeys.delete(key);
            else this.busyKeys.set(key, left);
          }
        };
        const done: Promise<void> = this.runBatch(batch, release).finally(() => {
          running.delete(done);
          release();
        });
        running.add(done);
        for (const resolve of this.startWaiters.splice(0)) resolve();
      }
    } finally {
      this.draining = false;
      for (const resolve of this.startWaiters.splice(0)) resolve();
      for (const resolve of this.drained.splice(0)) resolve();
    }
  }

  /**
   * The next transaction's units, in queue order: up to MAX_BATCH, or one unit that must run
   * alone. Units whose key a running transaction holds stay queued (as do later units of the
   * same key, which keeps their order).
   */
  private takeBatch(): Unit[] {
    const batch: Unit[] = [];
    // PostgreSQL: one unit of a key per transaction. Units of one conversation update the
    // same rows (every recipient's unread count), and a row updated again in the transaction
    // that already updated it gets one more version, which no page pruning can remove before
    // the commit: with 4 messages to a 2,000-user group in one transaction the database spent
    // 74-83 ms of CPU per message against 45-52 ms with one message per transaction
    // (bench/micro/pg-fanout-spans.ts, IN_FLIGHT=4 against 1).
    const taken = this.store.writers > 1 ? new Set<string>() : undefined;
    for (let i = 0; i < this.queue.length && batch.length < MAX_BATCH;) {
      const unit = this.queue[i];
      if (unit.key !== undefined && (this.busyKeys.has(unit.key) || taken?.has(unit.key))) {
        i++;
        continue;
      }
      if (unit.alone && batch.length > 0) break;
      if (unit.key !== undefined) taken?.add(unit.key);
      batch.push(...this.queue.splice(i, 1));
      if (unit.alone) break;
    }
    // Beside other transactions (PostgreSQL) the units run in the order of their keys, so any
    // two transactions lock conversations' rows in one order: two nodes that took the same two
    // conversations' messages in opposite orders deadlocked, and each deadlock costs
    // deadlock_timeout (1 s) before its units run again alone. The sort is stable: units of one
    // key keep their order. (Users are locked in id order within a unit, not across a batch's
    // units: two batches whose units share users across different conversations can still
    // deadlock, and then recover the same way.)
    if (this.store.writers > 1 && batch.length > 1) batch.sort(byKey);
    return batch;
  }

  private async runBatch(batch: Unit[], release: () => void): Promise<void> {
    for (const unit of batch) {
      unit.attempts++;
      unit.produced = [];
      unit.pushesQueued = 0;
      unit.pushesHeld = 0;
      unit.pushesLeased = [];
      unit.error = undefined;
    }
    const single = batch.length === 1;
    // Savepoints cost SQLite next to nothing; on PostgreSQL two round trips per unit. There a
    // batch runs without them, and if one unit fails, all of its units run again, each alone.
    const savepoints = !single && this.store.dialect === 'sqlite';
    let trx;
    /** This commit's place in the order of publishing, once it committed. */
    let turn: { previous?: Promise<void>; done(): void } | undefined;
    const startedAt = performance.now();
    let committedAt = NaN;
    try {
      trx = await this.store.db.startTransaction().execute();
      for (let index = 0; index < batch.length; index++) {
        const unit = batch[index];
        if (
          savepoints &&
          index > 0 &&
          (unit.key === undefined || unit.key !== batch[0].key) &&
          performance.now() - startedAt > BATCH_WORK_MS
        ) {
          // The rest has not run: back to the head of the queue, in order, not an attempt of theirs.
          const rest = batch.splice(index);
          for (const left of rest) left.attempts--;
          this.queue.unshift(...rest);
          this.resumeCut = true;
          break;
        }
        const emit: Emit = async (drafts, options) => {
          const notifications = await appendNotifications(trx!, drafts, {
            bulk: this.store.bulk,
            silencer: this.silencer,
            pushHold: this.pushHold,
            pushLease: this.pushLease?.(),
            onPushesQueued: (count, held, leased) => {
              unit.pushesQueued += count;
              unit.pushesHeld += held;
              unit.pushesLeased.push(...leased);
            },
            ...options,
          });
          unit.produced.push(...notifications);
          return notifications;
        };
        if (single) {
          unit.result = await unit.work(trx, emit);
          continue;
        }
        if (!savepoints) {
          try {
            unit.result = await unit.work(trx, emit);
          } catch {
            throw new SplitBatch();
          }
          continue;
        }
        const savepoint = await trx.savepoint('unit').execute();
        try {
          unit.result = await unit.work(savepoint, emit);
          await savepoint.releaseSavepoint('unit').execute();
        } catch (error) {
          await savepoint.rollbackToSavepoint('unit').execute();
          this.store.bulk.settled?.(trx, false);
          unit.error = error;
          unit.produced = [];
          // Rolled back: these ids may be taken again by the next unit's rows.
          unit.pushesLeased = [];
        }
      }
      await trx.commit().execute();
      committedAt = performance.now();
      turn = this.publishTurn();
      this.store.bulk.settled?.(trx, true);
    } catch (error) {
      if (trx) this.store.bulk.settled?.(trx, false);
      if (trx && !trx.isCommitted && !trx.isRolledBack)
        await trx
          .rollback()
          .execute()
          .catch(() => {});
      if (error instanceof SplitBatch) {
        // Nothing of the batch was committed: its units go back to the head of the queue, to
        // run again each alone, where the failing one fails by itself (not an attempt of theirs).
        for (const unit of batch) {
          unit.attempts--;
          unit.alone = true;
          unit.produced = [];
        }
        this.queue.unshift(...batch);
        return;
      }
      // The whole transaction is gone: every unit either retries or fails with the error.
      for (const unit of batch) {
        unit.produced = [];
        unit.error = unit.error ?? error;
      }
    }

    // PostgreSQL: when more work of these keys waits (a busy group), the keys are given back
    // now and the next transaction sends its first statement before this one's frames are
    // written, so the database works on it while this thread publishes (a group message's
    // 2,000 frames are written synchronously; the next message's BEGIN used to wait for them).
    // Its frames still go out first (see publishTurn).
    const committed = batch.every((unit) => unit.error === undefined);
    if (committed && this.store.writers > 1 && this.queue.some((unit) => unit.key !== undefined && batch.some((b) => b.key === unit.key))) {
      const started = new Promise<void>((resolve) => this.startWaiters.push(resolve));
      release();
      this.wake?.();
      await started;
      // The pool hands a connection over on the next tick: the statement is written by the
      // end of this turn.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }

    const published: Notification[] = [];
    let pushesQueued = 0;
    let pushesHeld = 0;
    const pushesLeased: LeasedRows[] = [];
    for (const unit of batch) {
      if (unit.error !== undefined) continue;
      published.push(...unit.produced);
      pushesQueued += unit.pushesQueued;
      pushesHeld += unit.pushesHeld;
      pushesLeased.push(...unit.pushesLeased);
    }
    try {
      if (turn?.previous) await turn.previous;
      if (published.length > 0) await this.publish(published, pushesQueued, pushesHeld, pushesLeased).catch(this.onPublishError);
    } finally {
      turn?.done();
    }
    if (this.batchListeners.length > 0 && !Number.isNaN(committedAt)) {
      const publishedAt = performance.now();
      const times: BatchTimes = {
        units: batch.length,
        unitsMs: batch.map((unit) => publishedAt - unit.queuedAt),
        waitedMs: startedAt - batch.reduce((oldest, unit) => Math.min(oldest, unit.queuedAt), Infinity),
        workMs: committedAt - startedAt,
        publishMs: publishedAt - committedAt,
      };
      for (const listener of this.batchListeners) listener(times);
    }

    for (const unit of batch) {
      if (unit.error === undefined) unit.resolve(unit.result);
      else if (isRetryable(unit.error) && unit.attempts < MAX_ATTEMPTS) this.queue.push(unit);
      else unit.reject(unit.error);
    }
  }

  /**
   * Commits publish in the order they committed: a transaction started before the previous
   * one published (see runBatch) waits for it, whatever its answers' timing.
   */
  private publishTurn(): { previous?: Promise<void>; done(): void } {
    const previous = this.lastPublish;
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    this.lastPublish = mine;
    return {
      previous,
      done: () => {
        done();
        if (this.lastPublish === mine) this.lastPublish = undefined;
      },
    };
  }

  /** Publishes already committed notifications (used by transact, and by tests and tools). */
  async publish(notifications: Notification[], pushesQueued = 0, pushesHeld = 0, pushesLeased: LeasedRows[] = []): Promise<void> {
    try {
      await this.bus.publish(notifications);
    } finally {
      // Even when the bus failed: rows leased to the dispatcher are sent only once it is told.
      for (const listener of this.committedListeners) listener(notifications, pushesQueued, pushesHeld, pushesLeased);
    }
  }
}
