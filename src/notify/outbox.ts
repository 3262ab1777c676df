import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { SILENT_PUSH_REFUSED, type PushChannel, type PushProvider, type PushTarget, type SendOutcome } from '../model/channel.ts';
import { isBackgroundPush, notificationId, parseNotificationId, type Notification } from '../model/notification.ts';
import type {
  ClaimedDelivery,
  DeliveryStore,
  FinalState,
  OutcomeMarks,
  PushDeviceRow,
  SeenQuestion,
  UsableDevice,
} from '../store/deliveries.ts';
import { rowToNotification } from '../store/rows.ts';
import type { LeasedRows, PushLease } from '../store/bulk.ts';
import type { DeviceAlerts } from './preferences.ts';

/*
 * The push dispatcher over the durable outbox (the `deliveries` table). Rows are written
 * in the notification's own transaction; here they are claimed in batches under a lease,
 * sent with bounded concurrency, and their outcomes recorded in batched UPDATEs. The rows a
 * commit of this node writes (where its store can) are written already leased to it and
 * handed over with the commit (`lease`, `take`): they are read back by id, not claimed, which
 * spares the claim's UPDATE of every row and of the due index. Rows of other nodes, retries
 * and rows left by a process that stopped are claimed.
 *
 * Delivery is at least once: a push the provider accepted but whose outcome was not yet
 * recorded when the process died is sent again after restart. Apps deduplicate by the
 * notification id that every push carries (APNs: also the apns-id).
 */

/**
 * HERALD_NO_LEASED_PUSH_WRITES=1 turns off writing this node's outbox rows leased to it: every
 * row is then claimed, as rows of other nodes are.
 */
const LEASED_WRITES = process.env.HERALD_NO_LEASED_PUSH_WRITES !== '1';

/** A push is given up (state failed) after this many attempts. */
export const MAX_ATTEMPTS = 10;
/** Rows claimed per statement. */
const CLAIM_BATCH = 500;
/** Pushes handed to the channels and not yet answered, over all providers. */
const MAX_IN_FLIGHT = 4000;
/** How long a claim holds a row; renewed while the row is in flight. */
const LEASE_MS = 60_000;
const LEASE_RENEW_MS = 20_000;
/** The dispatcher looks for due rows at least this often (retries, other nodes, expired leases). */
const IDLE_POLL_MS = 1000;
/** Outcomes are gathered this long, then written together. */
const FLUSH_DELAY_MS = 15;
/** Rows per UPDATE … WHERE id IN (…). */
const UPDATE_CHUNK = 1000;
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 10 * 60 * 1000;
/** Pending rows past their time to live are marked expired this often. */
const EXPIRY_SWEEP_MS = 60_000;
/**
 * Notifications this node committed with pushes, kept so that claiming their outbox rows
 * needs no read of their feed rows (a message's pushes are usually claimed within
 * milliseconds of its commit). A feed row does not change once written, so the one in
 * memory is the row; the oldest go first past this many, and are read again if needed.
 */
const REMEMBERED_NOTIFICATIONS = 10_000;

/**
 * When to try again: the provider's Retry-After when it gave one (plus up to 10 % so that
 * many rows told the same do not return at the same instant), otherwise exponential
 * backoff with jitter: between half and all of 1 s · 2^(attempts-1), at most 10 minutes.
 */
export function retryDelayMs(attempts: number, retryAfterMs?: number, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined) return retryAfterMs + Math.floor(random() * Math.min(retryAfterMs * 0.1, 5000));
  const ceiling = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, attempts - 1));
  return Math.floor(ceiling / 2 + (random() * ceiling) / 2);
}

/** A claimed row once its push went out: it carries the token, the push's context being the row itself. */
type SentRow = ClaimedDelivery & { token: string };

const OUTCOME_KINDS: ReadonlyArray<SendOutcome['kind']> = ['delivered', 'retry', 'dead', 'failed'];

interface PendingOutcomes {
  delivered: number[];
  /** Rows that end with a reason, grouped by state and reason so one UPDATE covers a group. */
  final: Map<string, { state: FinalState; reason: string; ids: number[] }>;
  retries: Array<{ id: number; at: number; reason: string }>;
  deadTokens: Array<{ id: number; station: string; token: string; reason: string }>;
  /** Provider answers by provider and outcome, counted into the metric once per batch rather than once per push. */
  answers: Map<string, Record<SendOutcome['kind'], number>>;
}

const emptyOutcomes = (): PendingOutcomes => ({ delivered: [], final: new Map(), retries: [], deadTokens: [], answers: new Map() });

export interface Outbox {
  /** Look for due rows now (called after every commit that produced notifications). */
  kick(): void;
  /** Notifications just committed with outbox rows: their rows need not be read back (see REMEMBERED_NOTIFICATIONS). */
  remember(notifications: readonly Notification[]): void;
  /**
   * The lease under which a commit about to be made may write its outbox rows (none while
   * the dispatcher closes, or has no channel). Rows written under it must be handed to take()
   * once committed.
   */
  lease(): PushLease | undefined;
  /** Rows just committed leased to this dispatcher (see lease()); sent in turn with claimed ones, after kick(). */
  take(leased: readonly LeasedRows[]): void;
  /** Stop claiming, let in-flight pushes finish briefly, record their outcomes, release leases. */
  close(): Promise<void>;
}

/** What the dispatcher works with: chosen and built in app.ts. */
export interface OutboxParts {
  deliveries: DeliveryStore;
  /** One channel per provider; rows of providers without one wait until they expire. */
  channels: PushChannel[];
  log: Logger;
  /** Provider answers by provider and outcome. */
  pushes: Pick<Counter<'provider' | 'outcome'>, 'inc'>;
  /** The kinds each device alerts for; a kind it does not goes as a background push. */
  alerts?: DeviceAlerts;
  /** Held pushes by how their hold ended: `sent` or `cancelled` (`held` is counted when they are queued). */
  holds?: Pick<Counter<'outcome'>, 'inc'>;
}

export async function startOutbox(parts: OutboxParts): Promise<Outbox> {
  const dispatcher = new Dispatcher(parts);
  await dispatcher.start();
  return dispatcher;
}

class Dispatcher implements Outbox {
  private readonly owner = `${os.hostname().slice(0, 40)}/${process.pid}/${randomBytes(4).toString('hex')}`;
  private readonly channels: Map<string, PushChannel>;
  private readonly providers: string[];
  private readonly deliveries: DeliveryStore;
  private readonly log: Logger;
  private readonly pushes: OutboxParts['pushes'];
  private readonly alerts: DeviceAlerts | undefined;
  private readonly holds: OutboxParts['holds'];
  private inFlight = 0;
  private pumping = false;
  private pumpAgain = false;
  /** The pump stopped because MAX_IN_FLIGHT was reached; completions restart it. */
  private starved = false;
  private closing = false;
  private wakeTimer?: NodeJS.Timeout;
  private wakeAt = Infinity;
  private renewTimer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private outcomes = emptyOutcomes();
  private flushTimer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private idleWaiters: Array<() => void> = [];
  /** Remembered notifications by id, oldest first. */
  private remembered = new Map<string, Notification>();
  /** Rows committed leased to this dispatcher and not read yet, oldest first: [next id, last id]. */
  private leased: LeasedRows[] = [];

  constructor(parts: OutboxParts) {
    this.deliveries = parts.deliveries;
    this.log = parts.log;
    this.pushes = parts.pushes;
    this.alerts = parts.alerts;
    this.holds = parts.holds;
    this.channels = new Map(parts.channels.map((c) => [c.provider, c]));
    this.providers = [...this.channels.keys()];
  }

  async start(): Promise<void> {
    await this.releaseLeasesOfDeadProcesses();
    this.renewTimer = setInterval(() => void this.renewLeases(), LEASE_RENEW_MS);
    this.sweepTimer = setInterval(() => void this.sweepExpired(), EXPIRY_SWEEP_MS);
    this.renewTimer.unref();
    this.sweepTimer.unref();
    this.kick();
  }

  kick(): void {
    if (this.closing || this.providers.length === 0) return;
    void this.pump();
  }

  lease(): PushLease | undefined {
    if (!LEASED_WRITES || this.closing || this.providers.length === 0) return undefined;
    return { owner: this.owner, until: Date.now() + LEASE_MS, providers: this.providers };
  }

  take(leased: readonly LeasedRows[]): void {
    if (this.providers.length === 0 || leased.length === 0) return;
    if (this.closing) {
      // Leased while it still ran, committed after close() let its leases go: due at once
      // for whichever node claims next, rather than when the lease runs out.
      this.deliveries.releaseLeases([this.owner], Date.now()).catch((error: unknown) => {
        this.log.warn({ err: error }, 'releasing pushes committed while closing failed');
      });
      return;
    }
    // Copies: the first is moved on as it is read.
    for (const [first, last] of leased) this.leased.push([first, last]);
  }

  remember(notifications: readonly Notification[]): void {
    if (this.providers.length === 0) return;
    const remembered = this.remembered;
    for (const n of notifications) remembered.set(n.id, n);
    if (remembered.size <= REMEMBERED_NOTIFICATIONS) return;
    let over = remembered.size - REMEMBERED_NOTIFICATIONS;
    for (const id of remembered.keys()) {
      if (over-- <= 0) break;
      remembered.delete(id);
    }
  }

  /** Claims and dispatches due rows until none is left or the in-flight bound is reached. */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      for (;;) {
        this.pumpAgain = false;
        if (this.closing) break;
        const room = MAX_IN_FLIGHT - this.inFlight;
        if (room <= 0) {
          this.starved = true;
          break;
        }
        const wanted = Math.min(room, CLAIM_BATCH);
        // Rows handed over leased first; once they are read, one claim for anything else due.
        const fromLeased = this.leased.length > 0;
        const rows = fromLeased ? await this.readLeased(wanted) : await this.claimDueDeliveries(wanted);
        if (rows.length > 0) await this.dispatch(rows);
        if (!fromLeased && rows.length < wanted && !this.pumpAgain) break;
      }
    } catch (error) {
      this.log.error({ err: error }, 'claiming due pushes failed; trying again shortly');
    } finally {
      this.pumping = false;
      this.scheduleWake(Date.now() + IDLE_POLL_MS);
    }
  }

  /**
   * Up to `limit` of the rows handed over leased, from the oldest range on. A row another
   * node took over after the lease ran out (it was not renewed) is no longer this owner's and
   * is not read.
   */
  private async readLeased(limit: number): Promise<ClaimedDelivery[]> {
    const range = this.leased[0];
    const rows = await this.deliveries.leasedRows(this.owner, range[0], range[1], limit);
    if (rows.length < limit) this.leased.shift();
    else range[0] = Number(rows[rows.length - 1].id) + 1;
    return rows;
  }

  /** Takes up to `limit` due rows under a lease in one statement. */
  private claimDueDeliveries(limit: number): Promise<ClaimedDelivery[]> {
    const now = Date.now();
    return this.deliveries.claimDue(this.owner, this.providers, limit, now + LEASE_MS, now);
  }

  /**
   * Builds each push from its notification row and device as they are now, and sends it.
   * The devices of a user share one notification: each notification row is read and
   * parsed once per batch, and its one object is handed to every send, so a channel can
   * build the provider payload once per notification.
   */
  private async dispatch(rows: ClaimedDelivery[]): Promise<void> {
    // An outbox row names its notification's user: the one whose feed the id points into.
    const userOf = new Map<string, string>();
    const notifications = new Map<string, Notification>();
    const wanted: Array<[number, number]> = [];
    for (const row of rows) {
      const id = row.notification_id;
      if (userOf.has(id)) continue;
      userOf.set(id, row.user_id);
      const known = this.remembered.get(id);
      if (known !== undefined && known.userId === row.user_id) {
        notifications.set(id, known);
        continue;
      }
      const named = parseNotificationId(id);
      if (named) wanted.push([named.userKey, named.seq]);
    }
    if (wanted.length > 0) {
      for (const n of await this.deliveries.feedRows(wanted)) {
        const id = notificationId(n.user_key, n.seq);
        notifications.set(id, rowToNotification(n, userOf.get(id)!));
      }
    }
    const seen = await this.seenWhileHeld(rows, notifications);
    const now = Date.now();
    let unusable: ClaimedDelivery[] | undefined;
    // One silent copy per notification, shared (like the original) by the devices that take it.
    let withheld: Map<string, Notification> | undefined;
    let heldSent = 0;
    let heldCancelled = 0;
    for (const row of rows) {
      let notification = notifications.get(row.notification_id);
      if (!notification) {
        // The notification was deleted (its user was removed) while the row was claimed.
        this.finish(row, 'failed', 'the notification no longer exists');
        continue;
      }
      if (row.state === 'held') {
        if (seen?.has(row.notification_id)) {
          heldCancelled++;
          this.finish(row, 'cancelled', 'the user saw it on a device in use, or read it, while it was held');
          continue;
        }
        heldSent++;
      }
      if (now >= row.expires_at) {
        this.finish(row, 'expired', 'its time to live passed before it could be sent');
        continue;
      }
      if (row.device === null) {
        (unusable ??= []).push(row);
        continue;
      }
      const [platform, token, keys] = typeof row.device === 'string' ? (JSON.parse(row.device) as UsableDevice) : row.device;
      if (!notification.silent && this.alerts && !this.alerts.alertsOn(row.user_id, row.station, notification.type)) {
        const original = notification;
        notification = (withheld ??= new Map()).get(original.id);
        if (!notification) withheld.set(original.id, (notification = { ...original, silent: true }));
      }
      if (isBackgroundPush(notification) && SILENT_PUSH_REFUSED.includes(row.provider as PushProvider)) {
        this.finish(row, 'cancelled', 'a browser must show every push: silent notifications are not sent by Web Push');
        continue;
      }
      this.send(row, notification, {
        station: row.station,
        userId: row.user_id,
        platform,
        provider: row.provider as PushProvider,
        token,
        keys: keys ? (JSON.parse(keys) as Record<string, string>) : undefined,
      });
    }
    if (heldSent > 0) this.holds?.inc({ outcome: 'sent' }, heldSent);
    if (heldCancelled > 0) this.holds?.inc({ outcome: 'cancelled' }, heldCancelled);
    if (unusable) await this.closeUnusable(unusable);
  }

  /**
   * Of the held rows' notifications, the ids of those their user saw while they were held:
   * one query for the whole claim. Undefined when no row is held.
   */
  private async seenWhileHeld(rows: ClaimedDelivery[], notifications: Map<string, Notification>): Promise<Set<string> | undefined> {
    let questions: SeenQuestion[] | undefined;
    const asked = new Set<string>();
    for (const row of rows) {
      if (row.state !== 'held' || asked.has(row.notification_id)) continue;
      const notification = notifications.get(row.notification_id);
      const named = parseNotificationId(row.notification_id);
      if (!notification || !named) continue;
      asked.add(row.notification_id);
      (questions ??= []).push([named.userKey, named.seq, notification.conversationId, row.user_id]);
    }
    if (!questions) return undefined;
    const seen = await this.deliveries.seenNotifications(questions);
    return new Set(seen.map((n) => notificationId(Number(n.user_key), Number(n.seq))));
  }

  private send(row: ClaimedDelivery, notification: Notification, target: PushTarget): void {
    this.inFlight++;
    const sent = row as SentRow;
    sent.token = target.token;
    this.channels.get(row.provider)!.send(target, notification, sent, this.onAnswer);
  }

  /** send's callback, one for every push: the row is the push's context. */
  private readonly onAnswer = (outcome: SendOutcome, row: SentRow): void => this.answered(row, row.token, outcome);

  /** Rows whose device cannot take a push (any more): each is dead, with the reason read from the device. */
  private async closeUnusable(rows: ClaimedDelivery[]): Promise<void> {
    const stations = [...new Set(rows.map((r) => r.station))];
    const devices = new Map<string, PushDeviceRow>();
    for (const d of await this.deliveries.pushDevices(stations)) devices.set(d.station, d);
    for (const row of rows) {
      const device = devices.get(row.station);
      if (
        device &&
        device.user_id === row.user_id &&
        device.push_provider === row.provider &&
        device.push_token &&
        device.push_disabled_at !== null
      ) {
        this.finish(row, 'dead', `push is disabled for the device: ${device.push_disabled_reason ?? ''}`.trim());
      } else {
        this.finish(row, 'dead', 'the device no longer has this push registration');
      }
    }
  }

  private answered(row: ClaimedDelivery, token: string, outcome: SendOutcome): void {
    this.inFlight--;
    this.record(row, token, outcome);
    if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    if (this.starved && this.inFlight <= MAX_IN_FLIGHT - CLAIM_BATCH) {
      this.starved = false;
      this.kick();
    }
  }

  private record(row: ClaimedDelivery, token: string, outcome: SendOutcome): void {
    let answers = this.outcomes.answers.get(row.provider);
    if (!answers) this.outcomes.answers.set(row.provider, (answers = { delivered: 0, retry: 0, dead: 0, failed: 0 }));
    answers[outcome.kind]++;
    switch (outcome.kind) {
      case 'delivered':
        this.outcomes.delivered.push(row.id);
        break;
      case 'failed':
        this.finish(row, 'failed', outcome.reason);
        break;
      case 'dead':
        this.outcomes.deadTokens.push({ id: row.id, station: row.station, token, reason: outcome.reason });
        break;
      case 'retry': {
        if (row.attempts >= MAX_ATTEMPTS) {
          this.finish(row, 'failed', `gave up after ${row.attempts} attempts: ${outcome.reason}`);
          break;
        }
        const at = Date.now() + retryDelayMs(row.attempts, outcome.afterMs);
        if (at >= row.expires_at) {
          this.finish(row, 'expired', `its time to live ends before the next attempt: ${outcome.reason}`);
          break;
        }
        this.outcomes.retries.push({ id: row.id, at, reason: outcome.reason });
        break;
      }
    }
    this.scheduleFlush();
  }

  private finish(row: ClaimedDelivery, state: Exclude<FinalState, 'delivered'>, reason: string): void {
    const key = `${state}\u0000${reason}`;
    const group = this.outcomes.final.get(key);
    if (group) group.ids.push(row.id);
    else this.outcomes.final.set(key, { state, reason, ids: [row.id] });
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, FLUSH_DELAY_MS);
  }

  /** Writes the gathered outcomes in one transaction, one UPDATE per group of rows. */
  private flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const batch = this.outcomes;
      this.outcomes = emptyOutcomes();
      for (const [provider, counts] of batch.answers) {
        for (const outcome of OUTCOME_KINDS) if (counts[outcome] > 0) this.pushes.inc({ provider, outcome }, counts[outcome]);
      }
      if (batch.delivered.length + batch.final.size + batch.retries.length + batch.deadTokens.length === 0) return;
      try {
        await this.writeOutcomes(batch);
      } catch (error) {
        // The rows keep their lease; when it runs out they are sent again (at least once).
        this.log.error({ err: error }, 'recording push outcomes failed');
      }
      const nextRetry = Math.min(...batch.retries.map((r) => r.at));
      if (Number.isFinite(nextRetry)) this.scheduleWake(nextRetry);
    });
    return this.flushing;
  }

  private writeOutcomes(batch: PendingOutcomes): Promise<void> {
    return this.deliveries.recordOutcomes(this.owner, Date.now(), async (marks: OutcomeMarks) => {
      for (let i = 0; i < batch.delivered.length; i += UPDATE_CHUNK) {
        await marks.markDelivered(batch.delivered.slice(i, i + UPDATE_CHUNK));
      }
      for (const group of batch.final.values()) {
        for (let i = 0; i < group.ids.length; i += UPDATE_CHUNK) {
          await marks.markFinal(group.state, group.reason.slice(0, 400), group.ids.slice(i, i + UPDATE_CHUNK));
        }
      }
      for (const retry of batch.retries) await marks.markRetry(retry.id, retry.at, retry.reason.slice(0, 400));
      for (const dead of batch.deadTokens) {
        const reason = dead.reason.slice(0, 200);
        if (await marks.markDeadToken(dead.id, dead.station, dead.token, reason)) {
          this.log.info({ station: dead.station, reason }, 'push token is dead; push disabled for the device');
        }
      }
    });
  }

  private scheduleWake(at: number): void {
    if (this.closing || this.providers.length === 0) return;
    if (this.wakeTimer && at >= this.wakeAt) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(
      () => {
        this.wakeTimer = undefined;
        this.wakeAt = Infinity;
        this.kick();
      },
      Math.max(0, at - Date.now()),
    );
  }

  /** Keeps the lease of rows still in flight or handed over, so a slow provider does not get them sent twice. */
  private async renewLeases(): Promise<void> {
    if (this.inFlight === 0 && this.leased.length === 0) return;
    const now = Date.now();
    try {
      await this.deliveries.renewLeases(this.owner, now + LEASE_MS);
    } catch (error) {
      this.log.warn({ err: error }, 'renewing push leases failed');
    }
  }

  /**
   * Rows claimed by a process of this host that no longer runs (killed, crashed) are due
   * at once instead of when their lease runs out; other hosts' leases simply expire.
   */
  private async releaseLeasesOfDeadProcesses(): Promise<void> {
    const owners = await this.deliveries.leaseOwners();
    const host = os.hostname().slice(0, 40);
    const gone = owners.filter((owner) => {
      const [ownerHost, pid] = owner.split('/');
      return ownerHost === host && Number(pid) !== process.pid && !processRuns(Number(pid));
    });
    if (gone.length === 0) return;
    const released = await this.deliveries.releaseLeases(gone, Date.now());
    this.log.info({ rows: released }, 'took over pushes claimed by a process that stopped');
  }

  private async sweepExpired(): Promise<void> {
    try {
      await this.deliveries.expireOverdue(Date.now(), 'its time to live passed before it could be sent');
    } catch (error) {
      this.log.warn({ err: error }, 'expiring old pushes failed');
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.wakeTimer);
    clearInterval(this.renewTimer);
    clearInterval(this.sweepTimer);
    while (this.pumping) await new Promise((resolve) => setTimeout(resolve, 5));
    await this.untilIdle(3000);
    // Closing the channels answers what is still in flight with a retry.
    await Promise.all([...this.channels.values()].map((c) => c.close()));
    await this.untilIdle(2000);
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flush();
    await this.deliveries.releaseLeases([this.owner], Date.now());
  }

  private untilIdle(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

function processRuns(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
