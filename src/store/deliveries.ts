import type { Kysely, Transaction } from 'kysely';
import type { Database, Dialect, NotificationsTable } from './schema.ts';
import { LIST, listParameter, Statement } from './statement.ts';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * The outbox's SQL (the `deliveries` table), behind named methods: the dispatcher in
 * notify/outbox.ts decides what to claim, when to retry and what a provider's answer
 * means; this file only knows how each of those is written for SQLite and PostgreSQL.
 */
export interface DeliveryStore {
  /** Takes up to `limit` due rows of these providers under a lease held by `owner` until `leaseUntil`. */
  claimDue(owner: string, providers: readonly string[], limit: number, leaseUntil: number, now: number): Promise<ClaimedDelivery[]>;
  /**
   * The rows with ids from `first` to `last` that were written leased to `owner` and that it
   * still holds, up to `limit`, in id order (see PushLease in store/bulk.ts): what claimDue
   * gives, without a write.
   */
  leasedRows(owner: string, first: number, last: number, limit: number): Promise<ClaimedDelivery[]>;
  /** Feed rows by [user key, sequence] pairs. */
  feedRows(wanted: ReadonlyArray<[userKey: number, seq: number]>): Promise<NotificationsTable[]>;
  /** The push registration of devices, by station, as it is now. */
  pushDevices(stations: readonly string[]): Promise<PushDeviceRow[]>;
  /** Writes one batch of outcomes in one transaction; only rows `owner` still holds change. */
  recordOutcomes(owner: string, now: number, write: (marks: OutcomeMarks) => Promise<void>): Promise<void>;
  /** Moves the lease of `owner`'s rows in flight to `leaseUntil`. */
  renewLeases(owner: string, leaseUntil: number): Promise<void>;
  /** The owners holding a lease on a pending row. */
  leaseOwners(): Promise<string[]>;
  /** Makes the rows these owners hold due at `now`; the number of rows released. */
  releaseLeases(owners: readonly string[], now: number): Promise<number>;
  /** Marks pending rows past their time to live (and held by nobody) expired. */
  expireOverdue(now: number, reason: string): Promise<void>;
  /**
   * Of these notifications, the ones their user has seen since: a device acknowledged them
   * while in use, or a later clean notification read their conversation (or the feed up to them).
   */
  seenNotifications(notifications: readonly SeenQuestion[]): Promise<Array<{ user_key: number; seq: number }>>;
}

/** A held notification, as seenNotifications asks about it. */
export type SeenQuestion = [userKey: number, seq: number, conversationId: string | null, userId: string];

/** Rows still to be sent: `held` ones wait for the presence-aware hold to end. */
export const OPEN_STATES = ['pending', 'held'] as const;

/** The writes one batch of outcomes is made of (see recordOutcomes). */
export interface OutcomeMarks {
  markDelivered(ids: readonly number[]): Promise<void>;
  markFinal(state: FinalState, reason: string, ids: readonly number[]): Promise<void>;
  markRetry(id: number, at: number, reason: string): Promise<void>;
  /**
   * The provider called `token` dead: the row is dead and, when the token is still the
   * device's own (one registered meanwhile is good), push is disabled for the device and
   * its other pending rows are dead too. True when the device was disabled.
   */
  markDeadToken(id: number, station: string, token: string, reason: string): Promise<boolean>;
}

/** `cancelled`: a held alert the user saw elsewhere before its hold ended. */
export type FinalState = 'delivered' | 'failed' | 'expired' | 'dead' | 'cancelled';

export interface ClaimedDelivery {
  id: number;
  notification_id: string;
  user_id: string;
  station: string;
  provider: string;
  /** `held`: an alert that waited for its user to see it elsewhere; sent only if they did not. */
  state: (typeof OPEN_STATES)[number];
  attempts: number;
  expires_at: number;
  /**
   * The device's [platform, push token, push keys] when it can take this push now (still the
   * user's, same provider, push not disabled), read by the claim itself; otherwise null.
   * SQLite gives the JSON text, PostgreSQL the parsed array.
   */
  device: string | UsableDevice | null;
}

export type UsableDevice = [platform: string, token: string, keys: string | null];

export interface PushDeviceRow {
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
 * The statements, written once as SQL: each runs for every few hundred pushes, and Kysely
 * would build and compile each anew. A list of ids or stations is one parameter.
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
const CLAIM = new Statement<ClaimedDelivery>({
  sqlite: `UPDATE deliveries SET lease_until = ?, lease_owner = ?, next_attempt_at = ?, attempts = attempts + 1, updated_at = ?
    WHERE id IN (SELECT id FROM deliveries WHERE state IN ('pending', 'held') AND next_attempt_at <= ?
      AND (lease_until IS NULL OR lease_until < ?) AND provider IN (SELECT value FROM json_each(?))
      ORDER BY next_attempt_at LIMIT ?)
    RETURNING id, notification_id, user_id, station, provider, state, attempts, expires_at,
      (SELECT json_array(platform, push_token, push_keys) FROM devices WHERE ${USABLE_DEVICE}) AS device`,
  postgres: `WITH due AS (
      SELECT id FROM deliveries WHERE state IN ('pending', 'held') AND next_attempt_at <= $3
        AND (lease_until IS NULL OR lease_until < $3) AND provider = ANY($4::varchar[])
      ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED)
    UPDATE deliveries SET lease_until = $1, lease_owner = $2, next_attempt_at = $1,
      attempts = deliveries.attempts + 1, updated_at = $3
    FROM due WHERE deliveries.id = due.id
    RETURNING deliveries.id, deliveries.notification_id, deliveries.user_id, deliveries.station,
      deliveries.provider, deliveries.state, deliveries.attempts, deliveries.expires_at,
      (SELECT json_build_array(platform, push_token, push_keys) FROM devices WHERE ${USABLE_DEVICE}) AS device`,
});

/**
 * Rows written leased to this process, read back by id (the primary key's range) after their
 * commit. Parameters: first id, last id, owner, limit. SQLite: `+state` keeps the planner
 * on the primary key (see OURS).
 */
const LEASED = new Statement<ClaimedDelivery>({
  sqlite: `SELECT id, notification_id, user_id, station, provider, state, attempts, expires_at,
      (SELECT json_array(platform, push_token, push_keys) FROM devices WHERE ${USABLE_DEVICE}) AS device
    FROM deliveries WHERE id BETWEEN ? AND ? AND lease_owner = ? AND +state = 'pending' ORDER BY id LIMIT ?`,
  postgres: `SELECT id, notification_id, user_id, station, provider, state, attempts, expires_at,
      (SELECT json_build_array(platform, push_token, push_keys) FROM devices WHERE ${USABLE_DEVICE}) AS device
    FROM deliveries WHERE id BETWEEN $1 AND $2 AND lease_owner = $3 AND state = 'pending' ORDER BY id LIMIT $4`,
});

const DEVICES = new Statement<PushDeviceRow>({
  sqlite: `SELECT station, user_id, platform, push_provider, push_token, push_keys, push_disabled_at, push_disabled_reason
    FROM devices WHERE station IN (${LIST.sqlite})`,
  postgres: `SELECT station, user_id, platform, push_provider, push_token, push_keys, push_disabled_at, push_disabled_reason
    FROM devices WHERE station IN (${LIST.postgres})`,
});

/** Feed rows by [user key, sequence] pairs, given as one JSON text. */
const NOTIFICATIONS = new Statement<NotificationsTable>({
  sqlite: `SELECT n.* FROM json_each(?) AS wanted
           CROSS JOIN notifications n ON n.epoch = (SELECT epoch FROM feed_epochs
               WHERE user_key = wanted.value ->> 0 AND first_seq <= wanted.value ->> 1 ORDER BY first_seq DESC LIMIT 1)
             AND n.user_key = wanted.value ->> 0 AND n.seq = wanted.value ->> 1`,
  postgres: `SELECT n.* FROM jsonb_array_elements(?::jsonb) AS wanted
             JOIN notifications n ON n.epoch = (SELECT epoch FROM feed_epochs
                 WHERE user_key = (wanted ->> 0)::bigint AND first_seq <= (wanted ->> 1)::bigint ORDER BY first_seq DESC LIMIT 1)
               AND n.user_key = (wanted ->> 0)::bigint AND n.seq = (wanted ->> 1)::bigint`,
});

/*
 * Outcomes close only rows this process still holds: a row taken over after a lost lease is
 * not ours to close. SQLite: `+state` keeps the planner on the primary key; on state it would
 * walk the deliveries_due index over every pending row and test each against the id list.
 */
const IDS = { sqlite: 'id IN (SELECT value FROM json_each(?))', postgres: 'id = ANY(?::bigint[])' } as const;
const OURS = {
  sqlite: `lease_owner = ? AND +state IN ('pending', 'held')`,
  postgres: `lease_owner = ? AND state IN ('pending', 'held')`,
} as const;

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

/** Parameters: next_attempt_at, last_error, updated_at, id, owner. A held row that was sent is held no more. */
const MARK_RETRY = new Statement<never>({
  sqlite: `UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_until = NULL, lease_owner = NULL, last_error = ?, updated_at = ?
    WHERE id = ? AND ${OURS.sqlite}`,
  postgres: `UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_until = NULL, lease_owner = NULL, last_error = ?,
      updated_at = ? WHERE id = ? AND ${OURS.postgres}`,
});

/**
 * Seen since: a device of the user acknowledged the notification while in use (`seen_seq`),
 * or a later clean notification read its conversation, or (no conversation, `data.upto`)
 * the feed up to it. Parameter: [user key, seq, conversation id, user id] entries as JSON.
 */
const SEEN = new Statement<{ user_key: number; seq: number }>({
  sqlite: `SELECT w.value ->> 0 AS user_key, w.value ->> 1 AS seq FROM json_each(?) AS w
    WHERE EXISTS (SELECT 1 FROM devices WHERE user_id = w.value ->> 3 AND seen_seq >= w.value ->> 1)
      OR EXISTS (SELECT 1 FROM notifications AS c WHERE c.epoch IN (SELECT epoch FROM feed_epochs WHERE user_key = w.value ->> 0
          AND first_seq >= coalesce((SELECT max(first_seq) FROM feed_epochs WHERE user_key = w.value ->> 0 AND first_seq <= w.value ->> 1), 0))
        AND c.user_key = w.value ->> 0 AND c.seq > w.value ->> 1 AND c.type = 'clean'
        AND (c.conversation_id = w.value ->> 2 OR (c.conversation_id IS NULL AND c.data ->> '$.upto' >= w.value ->> 1)))`,
  postgres: `SELECT (w ->> 0)::bigint AS user_key, (w ->> 1)::bigint AS seq FROM jsonb_array_elements(?::jsonb) AS w
    WHERE EXISTS (SELECT 1 FROM devices WHERE user_id = w ->> 3 AND seen_seq >= (w ->> 1)::bigint)
      OR EXISTS (SELECT 1 FROM notifications AS c WHERE c.epoch IN (SELECT epoch FROM feed_epochs WHERE user_key = (w ->> 0)::bigint
          AND first_seq >= coalesce((SELECT max(first_seq) FROM feed_epochs WHERE user_key = (w ->> 0)::bigint
            AND first_seq <= (w ->> 1)::bigint), 0))
        AND c.user_key = (w ->> 0)::bigint AND c.seq > (w ->> 1)::bigint
        AND c.type = 'clean' AND (c.conversation_id = w ->> 2
          OR (c.conversation_id IS NULL AND (c.data::jsonb ->> 'upto')::bigint >= (w ->> 1)::bigint)))`,
});

/** Disables a device's push after the provider called its token dead (only while it is still the device's token). */
export async function disablePush(db: Db, station: string, token: string, reason: string, at = Date.now()): Promise<void> {
  await db
    .updateTable('devices')
    .set({ push_disabled_at: at, push_disabled_reason: reason })
    .where('station', '=', station)
    .where('push_token', '=', token)
    .execute();
}

export class SqlDeliveryStore implements DeliveryStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: Dialect,
  ) {}

  claimDue(owner: string, providers: readonly string[], limit: number, leaseUntil: number, now: number): Promise<ClaimedDelivery[]> {
    const providerList = listParameter(this.db, providers);
    const parameters =
      this.dialect === 'postgres'
        ? [leaseUntil, owner, now, providerList, limit]
        : [leaseUntil, owner, leaseUntil, now, now, now, providerList, limit];
    return CLAIM.all(this.db, parameters);
  }

  leasedRows(owner: string, first: number, last: number, limit: number): Promise<ClaimedDelivery[]> {
    return LEASED.all(this.db, [first, last, owner, limit]);
  }

  feedRows(wanted: ReadonlyArray<[number, number]>): Promise<NotificationsTable[]> {
    return NOTIFICATIONS.all(this.db, [JSON.stringify(wanted)]);
  }

  pushDevices(stations: readonly string[]): Promise<PushDeviceRow[]> {
    return DEVICES.all(this.db, [listParameter(this.db, stations)]);
  }

  recordOutcomes(owner: string, now: number, write: (marks: OutcomeMarks) => Promise<void>): Promise<void> {
    return this.db.transaction().execute((trx) => write(new TransactionMarks(trx, owner, now)));
  }

  async renewLeases(owner: string, leaseUntil: number): Promise<void> {
    await this.db
      .updateTable('deliveries')
      .set({ lease_until: leaseUntil, next_attempt_at: leaseUntil })
      .where('lease_owner', '=', owner)
      .where('state', 'in', OPEN_STATES)
      .where('lease_until', 'is not', null)
      .execute();
  }

  async leaseOwners(): Promise<string[]> {
    const owners = await this.db
      .selectFrom('deliveries')
      .select('lease_owner')
      .distinct()
      .where('state', 'in', OPEN_STATES)
      .where('lease_owner', 'is not', null)
      .execute();
    return owners.map((o) => o.lease_owner!);
  }

  async releaseLeases(owners: readonly string[], now: number): Promise<number> {
    if (owners.length === 0) return 0;
    const released = await this.db
      .updateTable('deliveries')
      // Claiming moved next_attempt_at to the lease's end; released rows are due now.
      .set({ lease_until: null, lease_owner: null, next_attempt_at: now })
      .where('state', 'in', OPEN_STATES)
      .where('lease_owner', 'in', owners)
      .executeTakeFirst();
    return Number(released.numUpdatedRows);
  }

  seenNotifications(notifications: readonly SeenQuestion[]): Promise<Array<{ user_key: number; seq: number }>> {
    if (notifications.length === 0) return Promise.resolve([]);
    return SEEN.all(this.db, [JSON.stringify(notifications)]);
  }

  async expireOverdue(now: number, reason: string): Promise<void> {
    await this.db
      .updateTable('deliveries')
      .set({ state: 'expired', last_error: reason, updated_at: now })
      .where('state', 'in', OPEN_STATES)
      .where('expires_at', '<=', now)
      .where('lease_owner', 'is', null)
      .execute();
  }
}

/** The outcome writes of one transaction. */
class TransactionMarks implements OutcomeMarks {
  constructor(
    private readonly trx: Transaction<Database>,
    private readonly owner: string,
    private readonly now: number,
  ) {}

  async markDelivered(ids: readonly number[]): Promise<void> {
    await MARK_DELIVERED.all(this.trx, [this.now, listParameter(this.trx, ids), this.owner]);
  }

  async markFinal(state: FinalState, reason: string, ids: readonly number[]): Promise<void> {
    await MARK_FINAL.all(this.trx, [state, reason, this.now, listParameter(this.trx, ids), this.owner]);
  }

  async markRetry(id: number, at: number, reason: string): Promise<void> {
    await MARK_RETRY.all(this.trx, [at, reason, this.now, id, this.owner]);
  }

  async markDeadToken(id: number, station: string, token: string, reason: string): Promise<boolean> {
    const trx = this.trx;
    await this.markFinal('dead', reason, [id]);
    const device = await trx.selectFrom('devices').select('push_token').where('station', '=', station).executeTakeFirst();
    if (device?.push_token !== token) return false;
    await disablePush(trx, station, token, reason, this.now);
    await trx
      .updateTable('deliveries')
      .set({
        state: 'dead',
        lease_until: null,
        lease_owner: null,
        last_error: `push disabled: ${reason}`.slice(0, 400),
        updated_at: this.now,
      })
      .where('station', '=', station)
      .where('state', 'in', OPEN_STATES)
      .execute();
    return true;
  }
}

/** How the outbox of one provider stands (`herald outbox status`). */
export interface OutboxStatus {
  provider: string;
  /** Waiting for their first attempt, or on it now. */
  pending: number;
  /** Tried at least once without success and to be tried again (a row whose sender died too). */
  retrying: number;
  /** Waiting for the user to see their notification on a device in use before alerting. */
  held: number;
  delivered: number;
  /** The provider called the token dead; the device's push is disabled. */
  dead: number;
  failed: number;
  expired: number;
  cancelled: number;
  /** When the oldest row still pending, retrying or held was written (unix ms); null when none is. */
  oldestopen: number | null;
}

/**
 * Counts per provider and state. The claim adds its attempt before sending, so a row on its
 * first attempt (one attempt, under a lease) still counts as pending. Reads the whole table:
 * a command for the operator, never run on the hot path.
 */
const OUTBOX_STATUS = new Statement<OutboxStatus>(`SELECT provider,
    sum(CASE WHEN state = 'pending' AND (attempts = 0 OR (attempts = 1 AND lease_owner IS NOT NULL)) THEN 1 ELSE 0 END) AS pending,
    sum(CASE WHEN state = 'pending' AND (attempts > 1 OR (attempts = 1 AND lease_owner IS NULL)) THEN 1 ELSE 0 END) AS retrying,
    sum(CASE WHEN state = 'held' THEN 1 ELSE 0 END) AS held,
    sum(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END) AS delivered,
    sum(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) AS dead,
    sum(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS failed,
    sum(CASE WHEN state = 'expired' THEN 1 ELSE 0 END) AS expired,
    sum(CASE WHEN state = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
    min(CASE WHEN state IN ('pending', 'held') THEN created_at END) AS oldestopen
  FROM deliveries GROUP BY provider ORDER BY provider`);

/** The providers `outboxStatus` always reports, with zeros when they have no rows. */
export const PUSH_PROVIDERS = ['apns', 'fcm', 'webpush'] as const;

/** The outbox per provider: APNs, FCM and Web Push always, any other provider that has rows. */
export async function outboxStatus(db: Db): Promise<OutboxStatus[]> {
  const rows = new Map((await OUTBOX_STATUS.all(db, [])).map((row) => [row.provider, row]));
  const zero = (provider: string): OutboxStatus => ({
    provider,
    pending: 0,
    retrying: 0,
    held: 0,
    delivered: 0,
    dead: 0,
    failed: 0,
    expired: 0,
    cancelled: 0,
    oldestopen: null,
  });
  const providers = [...new Set([...PUSH_PROVIDERS, ...rows.keys()])];
  return providers.map((provider) => {
    const row = rows.get(provider);
    if (!row) return zero(provider);
    // PostgreSQL's sum is numeric (text through pg); SQLite's an integer.
    const counts = Object.fromEntries(
      Object.entries(row).map(([key, value]) => [key, key === 'provider' || value === null ? value : Number(value)]),
    );
    return { ...zero(provider), ...counts } as OutboxStatus;
  });
}

/** One provider's rows still to send, and its dead ones (the console's backlog table). */
export interface ProviderBacklog {
  /** Due or in flight, not yet answered by the provider. */
  pending: number;
  /** Waiting for another attempt after the provider asked to retry or could not be reached. */
  retrying: number;
  /** Alerts waiting for the presence-aware hold to end. */
  held: number;
  /** Refused for good because the provider called the token dead. */
  dead: number;
}

export const BACKLOG_PROVIDERS = ['apns', 'fcm', 'webpush'] as const;
export type OutboxBacklog = Record<(typeof BACKLOG_PROVIDERS)[number], ProviderBacklog>;

/**
 * The outbox by provider and state. A retried row is pending with the provider's last
 * answer kept in `last_error` (a first attempt has none; a delivery clears it). Open rows are
 * found through the deliveries_due index; counting dead rows reads the table.
 */
const BACKLOG = new Statement<{
  provider: string;
  pending: number | string;
  retrying: number | string;
  held: number | string;
  dead: number | string;
}>(
  `SELECT provider,
     SUM(CASE WHEN state = 'pending' AND last_error IS NULL THEN 1 ELSE 0 END) AS pending,
     SUM(CASE WHEN state = 'pending' AND last_error IS NOT NULL THEN 1 ELSE 0 END) AS retrying,
     SUM(CASE WHEN state = 'held' THEN 1 ELSE 0 END) AS held,
     SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) AS dead
   FROM deliveries WHERE state IN ('pending', 'held', 'dead') GROUP BY provider`,
);

export async function outboxBacklog(db: Db): Promise<OutboxBacklog> {
  const backlog = Object.fromEntries(
    BACKLOG_PROVIDERS.map((provider) => [provider, { pending: 0, retrying: 0, held: 0, dead: 0 }]),
  ) as OutboxBacklog;
  for (const row of await BACKLOG.all(db, [])) {
    if (!(row.provider in backlog)) continue;
    // PostgreSQL's SUM is a bigint, which pg hands over as text.
    backlog[row.provider as keyof OutboxBacklog] = {
      pending: Number(row.pending),
      retrying: Number(row.retrying),
      held: Number(row.held),
      dead: Number(row.dead),
    };
  }
  return backlog;
}
