import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { AppContext } from '../context.ts';
import type { Store } from '../store/db.ts';
import type { PushChannel, PushProvider, PushTarget, SendOutcome } from '../model/channel.ts';
import { disablePush } from '../chat/devices.ts';
import type { NotificationsTable } from '../store/schema.ts';
import { LIST, listParameter, Statement } from '../store/statement.ts';
import { notificationId, parseNotificationId, type Notification } from '../model/notification.ts';
import { rowToNotification } from '../store/rows.ts';

/**
 * The push dispatcher over the durable outbox (the `deliveries` table). Rows are written
 * in the notification's own transaction; here they are claimed in batches under a lease,
 * sent with bounded concurrency, and their outcomes recorded in batched UPDATEs.
 *
 * Delivery is at least once: a push the provider accepted but whose outcome was not yet
 * recorded when the process died is sent again after restart. Apps deduplicate by the
 * notification id that every push carries (APNs: also the apns-id).
 */

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
 * When to try again: the provider's Retry-After when it gave one (plus up to 10 % so that
 * many rows told the same do not return at the same instant), otherwise exponential
 * backoff with jitter: between half and all of 1 s · 2^(attempts-1), at most 10 minutes.
 */
export function retryDelayMs(attempts: number, retryAfterMs?: number, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined) return retryAfterMs + Math.floor(random() * Math.min(retryAfterMs * 0.1, 5000));
  const ceiling = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.max(0, attempts - 1));
  return Math.floor(ceiling / 2 + (random() * ceiling) / 2);
}

interface ClaimedRow {
  id: number;
  notification_id: string;
  user_id: string;
  station: string;
  provider: string;
  attempts: number;
  expires_at: number;
  /**
   * The device's [platform, push token, push keys] when it can take this push now (still the
   * user's, same provider, push not disabled), read by the claim itself; otherwise null.
   * SQLite gives the JSON text, PostgreSQL the parsed array.
   */
  device: string | UsableDevice | null;
  /** Set when the push goes out: the device token it went to. */
  token?: string;
}

type UsableDevice = [platform: string, token: string, keys: string | null];

type FinalState = 'delivered' | 'failed' | 'expired' | 'dead';

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

interface DeviceRow {
  station: string;
  user_id: string;
  platform: string;
  push_provider: string | null;
  push_token: string | null;
  push_keys: string | null;
  push_disabled_at: number | null;
  push_disabled_reason: string | null;
}

/*
 * The dispatcher's statements, written once as SQL: each runs for every few hundred pushes,
 * and Kysely would build and compile each anew. A list of ids or stations is one parameter.
 */

/** The delivery's device, when it can take the push now. */
const USABLE_DEVICE = `devices.station = deliveries.station AND devices.user_id = deliveries.user_id
  AND devices.push_provider = deliveries.provider AND devices.push_token IS NOT NULL AND devices.push_disabled_at IS NULL`;

/**
 * Takes due rows under a lease. PostgreSQL skips rows another node is claiming at the same
 * moment (FOR UPDATE SKIP LOCKED); SQLite has a single writer, so its
 * UPDATE … WHERE id IN (SELECT … LIMIT n) is already atomic. A row whose lease ran out (its
 * process died) is due again. Parameters: lease end, owner, now, providers, limit (PostgreSQL
 * numbers them; SQLite takes each where it appears).
 *
 * The claim also moves `next_attempt_at` to the lease's end: rows in flight then lie after
 * `now` in the `deliveries_due` index, so the next claim's range scan does not walk past
 * them, and when the lease runs out they are due again by the same condition.
 *
 * Each row comes back with its device's push registration when the device can take it
 * (one index lookup inside the statement, cheaper than reading the devices apart); only
 * rows without one need the device row, to tell why.
 */
const CLAIM = new Statement<ClaimedRow>({
  sqlite: `UPDATE deliveries SET lease_until = ?, lease_owner = ?, next_attempt_at = ?, attempts = attempts + 1, updated_at = ?
    WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?
      AND (lease_until IS NULL OR lease_until < ?) AND provider IN (SELECT value FROM json_each(?))
      ORDER BY next_attempt_at LIMIT ?)
    RETURNING id, notification_id, user_id, station, provider, attempts, expires_at,
      (SELECT json_array(platform, push_token, push_keys) FROM devices WHERE ${USABLE_DEVICE}) AS device`,
  postgres: `WITH due AS (
      SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $3
        AND (lease_until IS NULL OR lease_until < $3) AND provider = ANY($4::varchar[])
      ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED)
    UPDATE deliveries SET lease_until = $1, lease_owner = $2, next_attempt_at = $1,
      attempts = deliveries.attempts + 1, updated_at = $3
    FROM due WHERE deliveries.id = due.id
    RETURNING deliveries.id, deliveries.notification_id, deliveries.user_id, deliveries.station,
      deliveries.provider, deliveries.attempts, deliveries.expires_at,
      (SELECT json_build_array(platform, push_token, push_keys) FROM devices WHERE ${USABLE_DEVICE}) AS device`,
});

const DEVICES = new Statement<DeviceRow>({
  sqlite: `SELECT station, user_id, platform, push_provider, push_token, push_keys, push_disabled_at, push_disabled_reason
    FROM devices WHERE station IN (${LIST.sqlite})`,
  postgres: `SELECT station, user_id, platform, push_provider, push_token, push_keys, push_disabled_at, push_disabled_reason
    FROM devices WHERE station IN (${LIST.postgres})`,
});

/** Feed rows by [user key, sequence] pairs, given as one JSON text. */
const NOTIFICATIONS = new Statement<NotificationsTable>({
  sqlite: `SELECT n.* FROM json_each(?) AS wanted
           CROSS JOIN notifications n ON n.user_key = wanted.value ->> 0 AND n.seq = wanted.value ->> 1`,
  postgres: `SELECT n.* FROM jsonb_array_elements(?::jsonb) AS wanted
             JOIN notifications n ON n.user_key = (wanted ->> 0)::bigint AND n.seq = (wanted ->> 1)::bigint`,
});

/*
 * Outcomes close only rows this process still holds: a row taken over after a lost lease is
 * not ours to close. SQLite: `+state` keeps the planner on the primary key; on state it would
 * walk the deliveries_due index over every pending row and test each against the id list.
 */
const IDS = { sqlite: 'id IN (SELECT value FROM json_each(?))', postgres: 'id = ANY(?::bigint[])' } as const;
const OURS = { sqlite: `lease_owner = ? AND +state = 'pending'`, postgres: `lease_owner = ? AND state = 'pending'` } as const;

/** Parameters: updated_at, ids, owner. */
const MARK_DELIVERED = new Statement<never>({
  sqlite: `UPDATE deliveries SET state = 'delivered', lease_until = NULL, lease_owner = NULL, last_error = NULL, updated_at = ?
    WHERE ${IDS.sqlite} AND ${OURS.sqlite}`,
  postgres: `UPDATE deliveries SET state = 'delivered', lease_until = NULL, lease_owner = NULL, last_error = NULL, updated_at = ?
    WHERE ${IDS.postgres} AND ${OURS.postgres}`,
});

/** Parameters: state, last_error, updated_at, ids, owner. */
const MARK_FINAL = new Statement<never>({
  sqlite: `UPDATE deliveries SET state = ?, lease_until = NULL, lease_owner = NULL, last_error = ?, updated_at = ?
    WHERE ${IDS.sqlite} AND ${OURS.sqlite}`,
  postgres: `UPDATE deliveries SET state = ?, lease_until = NULL, lease_owner = NULL, last_error = ?, updated_at = ?
    WHERE ${IDS.postgres} AND ${OURS.postgres}`,
});

/** Parameters: next_attempt_at, last_error, updated_at, id, owner. */
const MARK_RETRY = new Statement<never>({
  sqlite: `UPDATE deliveries SET next_attempt_at = ?, lease_until = NULL, lease_owner = NULL, last_error = ?, updated_at = ?
    WHERE id = ? AND ${OURS.sqlite}`,
  postgres: `UPDATE deliveries SET next_attempt_at = ?, lease_until = NULL, lease_owner = NULL, last_error = ?, updated_at = ?
    WHERE id = ? AND ${OURS.postgres}`,
});

function configurationHint(provider: PushProvider): string {
  if (provider === 'apns') return 'set HERALD_APNS_KEY_FILE, HERALD_APNS_KEY_ID, HERALD_APNS_TEAM_ID and HERALD_APNS_TOPIC';
  if (provider === 'fcm') return 'set HERALD_FCM_SERVICE_ACCOUNT';
  return 'configure its channel';
}

/** Why a provider cannot be used, or undefined when it is configured. */
export function unconfiguredReason(config: Config, provider: string): string | undefined {
  if (provider === 'apns' && !config.apns) return `APNs is not configured (${configurationHint('apns')})`;
  if (provider === 'fcm' && !config.fcm) return `FCM is not configured (${configurationHint('fcm')})`;
  // Web Push needs no account: its VAPID key pair is generated when none is configured.
  if (provider !== 'apns' && provider !== 'fcm' && provider !== 'webpush') return `no push channel for provider ${provider}`;
  return undefined;
}

/**
 * The configured APNs and FCM channels, and Web Push. A configured provider that cannot start is an error.
 * `threads`: APNs sends from worker threads when its configuration has them (the outbox); a
 * one-off push (a device's test push) sends from this thread.
 */
export async function openPushChannels(config: Config, log?: Logger, { threads = false } = {}): Promise<PushChannel[]> {
  const channels: PushChannel[] = [];
  if (config.apns && threads && config.apns.threads > 0) {
    const { ThreadedApnsChannel } = await import('../channels/apns/thread.ts');
    channels.push(await ThreadedApnsChannel.start(config, config.apns.threads, log));
  } else if (config.apns) {
    const { ApnsChannel } = await import('../channels/apns/channel.ts');
    channels.push(await ApnsChannel.fromConfig(config, log));
  }
  if (config.fcm) {
    const { FcmChannel } = await import('../channels/fcm/channel.ts');
    channels.push(await FcmChannel.fromConfig(config, log));
  }
  const { WebPushChannel } = await import('../channels/webpush/channel.ts');
  const { loadVapidKeys } = await import('../channels/webpush/vapid-keys.ts');
  channels.push(WebPushChannel.fromConfig(config, loadVapidKeys(config), log));
  return channels;
}

export interface OutboxOptions {
  /** Channels to use instead of those opened from the configuration (others may add Web Push). */
  channels?: PushChannel[];
}

export interface Outbox {
  /** Look for due rows now (called after every commit that produced notifications). */
  kick(): void;
  /** Stop claiming, let in-flight pushes finish briefly, record their outcomes, release leases. */
  close(): Promise<void>;
}

export async function startOutbox(ctx: AppContext, options: OutboxOptions = {}): Promise<Outbox> {
  const log = ctx.log.child({ part: 'outbox' });
  const channels = options.channels ?? (await openPushChannels(ctx.config, log, { threads: true }));
  for (const provider of ['apns', 'fcm'] as const) {
    const why = unconfiguredReason(ctx.config, provider);
    if (why && !channels.some((c) => c.provider === provider)) {
      log.warn(`${why}: ${provider === 'apns' ? 'iOS and Mac' : 'Android'} devices get no push; their pushes wait in the outbox until it is configured or they expire`);
    }
  }
  const dispatcher = new Dispatcher(ctx, log, channels);
  await dispatcher.start();
  return dispatcher;
}

class Dispatcher implements Outbox {
  private readonly owner = `${os.hostname().slice(0, 40)}/${process.pid}/${randomBytes(4).toString('hex')}`;
  private readonly channels: Map<string, PushChannel>;
  private readonly providers: string[];
  private readonly store: Store;
  /** The providers with a channel, as one list parameter. */
  private readonly providerList: unknown;
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

  constructor(
    private readonly ctx: AppContext,
    private readonly log: Logger,
    channels: PushChannel[],
  ) {
    this.store = ctx.store;
    this.channels = new Map(channels.map((c) => [c.provider, c]));
    this.providers = [...this.channels.keys()];
    this.providerList = listParameter(this.store.db, this.providers);
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
        const rows = await this.claimDueDeliveries(wanted);
        if (rows.length > 0) await this.dispatch(rows);
        if (rows.length < wanted && !this.pumpAgain) break;
      }
    } catch (error) {
      this.log.error({ err: error }, 'claiming due pushes failed; trying again shortly');
    } finally {
      this.pumping = false;
      this.scheduleWake(Date.now() + IDLE_POLL_MS);
    }
  }

  /** Takes up to `limit` due rows under a lease in one statement (CLAIM). */
  private async claimDueDeliveries(limit: number): Promise<ClaimedRow[]> {
    const now = Date.now();
    const leaseUntil = now + LEASE_MS;
    const parameters =
      this.store.dialect === 'postgres'
        ? [leaseUntil, this.owner, now, this.providerList, limit]
        : [leaseUntil, this.owner, leaseUntil, now, now, now, this.providerList, limit];
    return CLAIM.all(this.store.db, parameters);
  }

  /**
   * Builds each push from its notification row and device as they are now, and sends it.
   * The devices of a user share one notification: each notification row is read and
   * parsed once per batch, and its one object is handed to every send, so a channel can
   * build the provider payload once per notification.
   */
  private async dispatch(rows: ClaimedRow[]): Promise<void> {
    const db = this.store.db;
    // An outbox row names its notification's user: the one whose feed the id points into.
    const userOf = new Map<string, string>();
    const wanted: Array<[number, number]> = [];
    for (const row of rows) {
      if (userOf.has(row.notification_id)) continue;
      userOf.set(row.notification_id, row.user_id);
      const named = parseNotificationId(row.notification_id);
      if (named) wanted.push([named.userKey, named.seq]);
    }
    const notificationRows = await NOTIFICATIONS.all(db, [JSON.stringify(wanted)]);
    const notifications = new Map<string, Notification>();
    for (const n of notificationRows) {
      const id = notificationId(n.user_key, n.seq);
      notifications.set(id, rowToNotification(n, userOf.get(id)!));
    }
    const now = Date.now();
    let unusable: ClaimedRow[] | undefined;
    for (const row of rows) {
      const notification = notifications.get(row.notification_id);
      if (!notification) {
        // The notification was deleted (its user was removed) while the row was claimed.
        this.finish(row, 'failed', 'the notification no longer exists');
        continue;
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
      this.send(row, notification, {
        station: row.station,
        userId: row.user_id,
        platform,
        provider: row.provider as PushProvider,
        token,
        keys: keys ? (JSON.parse(keys) as Record<string, string>) : undefined,
      });
    }
    if (unusable) await this.closeUnusable(unusable);
  }

  private send(row: ClaimedRow, notification: Notification, target: PushTarget): void {
    this.inFlight++;
    row.token = target.token;
    this.channels.get(row.provider)!.send(target, notification, row, this.onAnswer);
  }

  /** send's callback, one for every push: the row is the push's context. */
  private readonly onAnswer = (outcome: SendOutcome, row: ClaimedRow): void => this.answered(row, row.token!, outcome);

  /** Rows whose device cannot take a push (any more): each is dead, with the reason read from the device. */
  private async closeUnusable(rows: ClaimedRow[]): Promise<void> {
    const db = this.store.db;
    const stations = [...new Set(rows.map((r) => r.station))];
    const devices = new Map<string, DeviceRow>();
    for (const d of await DEVICES.all(db, [listParameter(db, stations)])) devices.set(d.station, d);
    for (const row of rows) {
      const device = devices.get(row.station);
      if (device && device.user_id === row.user_id && device.push_provider === row.provider && device.push_token && device.push_disabled_at !== null) {
        this.finish(row, 'dead', `push is disabled for the device: ${device.push_disabled_reason ?? ''}`.trim());
      } else {
        this.finish(row, 'dead', 'the device no longer has this push registration');
      }
    }
  }

  private answered(row: ClaimedRow, token: string, outcome: SendOutcome): void {
    this.inFlight--;
    this.record(row, token, outcome);
    if (this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    if (this.starved && this.inFlight <= MAX_IN_FLIGHT - CLAIM_BATCH) {
      this.starved = false;
      this.kick();
    }
  }

  private record(row: ClaimedRow, token: string, outcome: SendOutcome): void {
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

  private finish(row: ClaimedRow, state: Exclude<FinalState, 'delivered'>, reason: string): void {
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
        for (const outcome of OUTCOME_KINDS) if (counts[outcome] > 0) this.ctx.metrics.pushes.inc({ provider, outcome }, counts[outcome]);
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

  private async writeOutcomes(batch: PendingOutcomes): Promise<void> {
    const now = Date.now();
    const owner = this.owner;
    await this.store.db.transaction().execute(async (trx) => {
      const ids = (list: number[]) => listParameter(trx, list);
      for (let i = 0; i < batch.delivered.length; i += UPDATE_CHUNK) {
        await MARK_DELIVERED.all(trx, [now, ids(batch.delivered.slice(i, i + UPDATE_CHUNK)), owner]);
      }
      for (const group of batch.final.values()) {
        for (let i = 0; i < group.ids.length; i += UPDATE_CHUNK) {
          await MARK_FINAL.all(trx, [group.state, group.reason.slice(0, 400), now, ids(group.ids.slice(i, i + UPDATE_CHUNK)), owner]);
        }
      }
      for (const retry of batch.retries) {
        await MARK_RETRY.all(trx, [retry.at, retry.reason.slice(0, 400), now, retry.id, owner]);
      }
      for (const dead of batch.deadTokens) {
        const reason = dead.reason.slice(0, 200);
        await MARK_FINAL.all(trx, ['dead', reason, now, ids([dead.id]), owner]);
        const device = await trx.selectFrom('devices').select('push_token').where('station', '=', dead.station).executeTakeFirst();
        // Only when the dead token is still the device's own: a token registered meanwhile is good.
        if (device?.push_token !== dead.token) continue;
        await disablePush(trx, dead.station, dead.token, reason, now);
        await trx
          .updateTable('deliveries')
          .set({ state: 'dead', lease_until: null, lease_owner: null, last_error: `push disabled: ${reason}`.slice(0, 400), updated_at: now })
          .where('station', '=', dead.station)
          .where('state', '=', 'pending')
          .execute();
        this.log.info({ station: dead.station, reason }, 'push token is dead; push disabled for the device');
      }
    });
  }

  private scheduleWake(at: number): void {
    if (this.closing || this.providers.length === 0) return;
    if (this.wakeTimer && at >= this.wakeAt) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeAt = Infinity;
      this.kick();
    }, Math.max(0, at - Date.now()));
  }

  /** Keeps the lease of rows still in flight, so a slow provider does not get them sent twice. */
  private async renewLeases(): Promise<void> {
    if (this.inFlight === 0) return;
    const now = Date.now();
    try {
      await this.store.db
        .updateTable('deliveries')
        .set({ lease_until: now + LEASE_MS, next_attempt_at: now + LEASE_MS })
        .where('lease_owner', '=', this.owner)
        .where('state', '=', 'pending')
        .where('lease_until', 'is not', null)
        .execute();
    } catch (error) {
      this.log.warn({ err: error }, 'renewing push leases failed');
    }
  }

  /**
   * Rows claimed by a process of this host that no longer runs (killed, crashed) are due
   * at once instead of when their lease runs out; other hosts' leases simply expire.
   */
  private async releaseLeasesOfDeadProcesses(): Promise<void> {
    const owners = await this.store.db
      .selectFrom('deliveries')
      .select('lease_owner')
      .distinct()
      .where('state', '=', 'pending')
      .where('lease_owner', 'is not', null)
      .execute();
    const host = os.hostname().slice(0, 40);
    const gone = owners
      .map((o) => o.lease_owner!)
      .filter((owner) => {
        const [ownerHost, pid] = owner.split('/');
        return ownerHost === host && Number(pid) !== process.pid && !processRuns(Number(pid));
      });
    if (gone.length === 0) return;
    const released = await this.store.db
      .updateTable('deliveries')
      // Claiming moved next_attempt_at to the lease's end; released rows are due now.
      .set({ lease_until: null, lease_owner: null, next_attempt_at: Date.now() })
      .where('state', '=', 'pending')
      .where('lease_owner', 'in', gone)
      .executeTakeFirst();
    this.log.info({ rows: Number(released.numUpdatedRows) }, 'took over pushes claimed by a process that stopped');
  }

  private async sweepExpired(): Promise<void> {
    try {
      await this.store.db
        .updateTable('deliveries')
        .set({ state: 'expired', last_error: 'its time to live passed before it could be sent', updated_at: Date.now() })
        .where('state', '=', 'pending')
        .where('expires_at', '<=', Date.now())
        .where('lease_owner', 'is', null)
        .execute();
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
    await this.store.db
      .updateTable('deliveries')
      .set({ lease_until: null, lease_owner: null, next_attempt_at: Date.now() })
      .where('lease_owner', '=', this.owner)
      .where('state', '=', 'pending')
      .execute();
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
