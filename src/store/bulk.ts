import type SQLite from 'better-sqlite3';
import { CompiledQuery, sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.ts';
import { alertsOnPush, dataText, type Notification } from '../model/notification.ts';
import { notificationToRow } from './rows.ts';
import { preparedOnPostgres } from './statement.ts';
import { pushDevice, PushDeviceUsers } from './push-device-users.ts';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * Where a user's feed stands: the user's key, and the sequence number and badge of the
 * newest feed row (0 and 0 for an empty feed). The feed is the one record of both: the next
 * notification takes the next number, and its badge moves on from the last one.
 */
export interface FeedHead {
  id: string;
  key: number;
  seq: number;
  badge: number;
  /** The epoch of the newest feed row (-1 for an empty feed; on PostgreSQL that of the user's last feed_epochs entry). */
  epoch?: number;
}

/**
 * The statements of the hot path whose size grows with the audience of a message, written
 * per database: where many users' feeds stand, and appending many feed rows and outbox rows.
 * All run inside the caller's transaction.
 */
export interface BulkWriter {
  /**
   * The feed heads of these users (those that exist), held against other writers of the
   * same feeds until the transaction ends.
   */
  feedHeads(trx: Db, userIds: string[]): Promise<FeedHead[]>;
  /**
   * Told how a transaction that called feedHeads ended (a rollback to a savepoint counts as
   * not committed), for a writer that remembers feed heads between transactions.
   */
  settled?(trx: Db, committed: boolean): void;
  /**
   * Feed rows; `keys[i]` is the user key of `notifications[i]`'s recipient, `epochs[i]` the
   * epoch of that recipient's feed head as feedHeads said (-1 or missing: not known).
   */
  insertNotifications(trx: Db, notifications: Notification[], keys: number[], epochs?: number[]): Promise<void>;
  /**
   * One outbox row per notification and push device of its recipient (a token, and pushes
   * not disabled), pending and due at `now`, given up at `expiresAt`; says how many. The
   * devices are joined by the database itself: a message to a large group queues tens of
   * thousands of pushes without a device row or an outbox row passing through JavaScript.
   * With a `hold`, the rows of an alerting notification whose recipient has a device in use
   * are `held` instead, due at `hold.until`. Without a hold, devices of `exceptProviders` get no row.
   */
  queuePushes(
    trx: Db,
    notifications: Notification[],
    now: number,
    expiresAt: number,
    hold?: PushHold,
    exceptProviders?: readonly string[],
    lease?: PushLease,
  ): Promise<QueuedPushes>;
  /**
   * Feed rows and their outbox rows in one statement, for a database where each statement is
   * a round trip: what insertNotifications and one queuePushes per group of `pushes` do.
   */
  insertWithPushes?(
    trx: Db,
    notifications: Notification[],
    keys: number[],
    pushes: PlannedPushes,
    epochs?: number[],
  ): Promise<QueuedPushes>;
}

/** The outbox rows to make for notifications: each with its expiry, and whether it may be held or is a background push. */
export interface PlannedPushes {
  now: number;
  /** The hold of the rows marked `holdable`, if any. */
  hold?: PushHold;
  /** Per pushed notification (the others have no entry). */
  notifications: Notification[];
  expiresAt: number[];
  /** Held while its user is in use: it alerts, is no background push, and the hold ends before it expires. */
  holdable: boolean[];
  /** Background pushes skip `backgroundRefusedBy`. */
  background: boolean[];
  backgroundRefusedBy: readonly string[];
  /** Rows due now are written leased to this dispatcher, where the writer can (SQLite's: see queuePushes). */
  lease?: PushLease;
}

/**
 * The dispatcher of this node, to which the rows it can send are written already leased:
 * it reads them by id after the commit instead of claiming them. Each is on its first
 * attempt, due again when the lease runs out (as a claimed row would be), so a node that
 * dies before sending them leaves them to the lease expiry or the dead-process release.
 */
export interface PushLease {
  owner: string;
  /** The lease's end (unix ms), also the row's next_attempt_at. */
  until: number;
  /** The providers the dispatcher has a channel for; rows of others are written unleased. */
  providers: readonly string[];
}

/** Outbox rows written leased, by id: every row from `first` to `last` leased to the owner. */
export type LeasedRows = [first: number, last: number];

/** Presence-aware hold: who counts as in use, and until when their alerting pushes wait. */
export interface PushHold {
  /** A device whose `active_at` is after this was in use. */
  activeAfter: number;
  /** When held rows fall due. */
  until: number;
}

export interface QueuedPushes {
  /** Outbox rows written. */
  queued: number;
  /** How many of them are held. */
  held: number;
  /** The ids of the rows written leased (among others: those not leased are not the lease owner's). */
  leased?: LeasedRows;
}

const DELIVERY_INSERT = `INSERT INTO deliveries (notification_id, user_id, station, provider, state, attempts, next_attempt_at,
  lease_until, lease_owner, expires_at, last_error, created_at, updated_at)`;
/** What makes a device one that takes pushes (the partial index devices_push_user holds just these). */
const PUSH_DEVICE = pushDevice('d');

/**
 * SQLite's outbox INSERT: `leased` when the row is written leased (PushLease), else `otherwise`.
 * `condition` narrows which rows may be (not the held ones).
 */
function leasedOr(leased: string, otherwise: string, condition = ''): string {
  return `CASE WHEN ${condition}d.push_provider IN (SELECT value FROM json_each(@leasedProviders)) THEN ${leased} ELSE ${otherwise} END`;
}

/**
 * The ids of one INSERT's rows: consecutive, SQLite having one writer. Those of them written
 * leased are the lease owner's; the dispatcher reads them by this range and owner.
 */
function leasedRange(result: SQLite.RunResult, lease: PushLease | undefined): { leased?: LeasedRows } {
  if (!lease || result.changes === 0 || lease.providers.length === 0) return {};
  const last = Number(result.lastInsertRowid);
  return { leased: [last - result.changes + 1, last] };
}

/** PUSH_DEVICE without the devices of some providers (names of Herald's own, never a caller's text). */
function pushDeviceExcept(providers: readonly string[] | undefined): string {
  if (!providers?.length) return PUSH_DEVICE;
  if (!providers.every((p) => /^[a-z]+$/.test(p))) throw new Error(`not a provider name: ${providers.join(', ')}`);
  return `${PUSH_DEVICE} AND d.push_provider NOT IN (${providers.map((p) => `'${p}'`).join(', ')})`;
}

const NOTIFICATION_COLUMNS = [
  'user_key',
  'seq',
  'type',
  'conversation_id',
  'sender_id',
  'title',
  'body',
  'badge',
  'silent',
  'data',
  'status',
  'status_at',
  'created_at',
  'push_options',
] as const;

/**
 * Feed rows of one epoch (on PostgreSQL, about: a statement's rows all go to one): a commit's
 * rows share the pages of the current one.
 */
export const EPOCH_ROWS = 65_536;

/** Feed heads a SQLite store remembers at most; beyond that it starts over. */
const MAX_REMEMBERED_HEADS = 100_000;

/**
 * Where the feeds of a SQLite store stand, remembered between transactions so a message to
 * a group the node has written to before reads no feed head at all. Only what a committed
 * transaction wrote is remembered; the open transaction's own heads are kept apart until
 * the notifier says how it ended (`settled`), and anything it cannot vouch for is
 * forgotten: a transaction that rolled back (even to a savepoint), one never settled, and
 * every commit of another connection (SQLite's data_version tells).
 */
class FeedHeadMemory {
  private committed = new Map<string, FeedHead>();
  private pending = new Map<string, FeedHead>();
  private pendingTrx: Db | undefined;
  private version: unknown;
  private readonly dataVersion: SQLite.Statement;

  constructor(database: SQLite.Database) {
    this.dataVersion = database.prepare('PRAGMA data_version').pluck();
  }

  /** Starts (or goes on with) a transaction; says nothing is to be trusted when in doubt. */
  enter(trx: Db): void {
    const version = this.dataVersion.get();
    if (version !== this.version) {
      this.version = version;
      this.committed.clear();
    }
    if (this.pendingTrx !== trx) {
      // The last transaction was never settled: what it wrote may or may not be there.
      if (this.pendingTrx !== undefined) this.forget();
      this.pendingTrx = trx;
    }
  }

  get(userId: string): FeedHead | undefined {
    return this.pending.get(userId) ?? this.committed.get(userId);
  }

  /** A row the open transaction appends to a feed (a user's rows come in sequence order). */
  advance(userId: string, key: number, seq: number, badge: number, epoch: number): void {
    const head = this.pending.get(userId);
    if (head) {
      head.seq = seq;
      head.badge = badge;
      head.epoch = epoch;
    } else {
      this.pending.set(userId, { id: userId, key, seq, badge, epoch });
    }
  }

  settle(trx: Db, committed: boolean): void {
    if (trx !== this.pendingTrx) return;
    if (!committed) return this.forget();
    if (this.committed.size + this.pending.size > MAX_REMEMBERED_HEADS) this.committed.clear();
    for (const [userId, head] of this.pending) this.committed.set(userId, head);
    this.pending.clear();
    this.pendingTrx = undefined;
  }

  private forget(): void {
    this.committed.clear();
    this.pending.clear();
    this.pendingTrx = undefined;
  }
}

/**
 * SQLite: prepared statements run on the connection that holds the transaction, so no SQL
 * text is built or parsed per call (a multi-row INSERT would be compiled and prepared anew
 * each time). Feed heads are remembered between transactions (FeedHeadMemory).
 */
export function sqliteBulkWriter(database: SQLite.Database): BulkWriter {
  let heads: SQLite.Statement | undefined;
  let insert: SQLite.Statement | undefined;
  let mark: SQLite.Statement | undefined;
  /** Feed rows written so far, about (the epoch's clock; rolled-back rows only move it on). */
  let written: number | undefined;
  /** The statement without a hold, per providers left out ('' for none). */
  const queues = new Map<string, SQLite.Statement>();
  let queueHolding: SQLite.Statement | undefined;
  let countHeld: SQLite.Statement | undefined;
  const memory = new FeedHeadMemory(database);
  const pushUsers = new PushDeviceUsers(database);
  return {
    async feedHeads(trx, userIds) {
      memory.enter(trx);
      const found: FeedHead[] = [];
      let unknown: string[] | undefined;
      for (const userId of userIds) {
        const head = memory.get(userId);
        if (head) found.push(head);
        else (unknown ??= []).push(userId);
      }
      if (unknown) {
        // SQLite has one writer at a time, and the caller's transaction is it. The users
        // travel as one JSON parameter; the newest row of each feed is one step down its index.
        heads ??= database.prepare(
          `SELECT users.id AS id, users.key AS key, coalesce(head.seq, 0) AS seq, coalesce(head.badge, 0) AS badge,
             coalesce(fe.epoch, -1) AS epoch
           FROM json_each(?) AS wanted
           CROSS JOIN users ON users.id = wanted.value
           LEFT JOIN feed_epochs AS fe ON fe.user_key = users.key
             AND fe.first_seq = (SELECT max(first_seq) FROM feed_epochs WHERE user_key = users.key)
           LEFT JOIN notifications AS head ON head.epoch = fe.epoch AND head.user_key = users.key
             AND head.seq = (SELECT max(seq) FROM notifications WHERE epoch = fe.epoch AND user_key = users.key)`,
        );
        for (const head of heads.all(JSON.stringify(unknown)) as FeedHead[]) {
          // Remembered as this transaction's: its epoch decides whether the next row starts one.
          memory.advance(head.id, head.key, head.seq, head.badge, head.epoch ?? -1);
          found.push(head);
        }
      }
      return found;
    },
    settled(trx, committed) {
      memory.settle(trx, committed);
    },
    async insertNotifications(_trx, notifications, keys) {
      // Row by row through one prepared statement: cheaper here than unpacking JSON per
      // column (measured: 6 µs against 17 µs a row for a 2,000-recipient message). Bound
      // straight from each notification: a just-made row is neither delivered nor read.
      insert ??= database.prepare(
        `INSERT INTO notifications (epoch, ${NOTIFICATION_COLUMNS.join(', ')}) VALUES (?, ${NOTIFICATION_COLUMNS.map(() => '?').join(', ')})`,
      );
      mark ??= database.prepare('INSERT INTO feed_epochs (user_key, first_seq, epoch) VALUES (?, ?, ?)');
      written ??= database.prepare('SELECT coalesce(max(rowid), 0) FROM notifications').pluck().get() as number;
      const epoch = Math.floor(written / EPOCH_ROWS);
      written += notifications.length;
      for (let i = 0; i < notifications.length; i++) {
        const n = notifications[i];
        // A user's rows entering another epoch are marked there, once.
        if (memory.get(n.userId)?.epoch !== epoch) mark.run(keys[i], n.seq, epoch);
        memory.advance(n.userId, keys[i], n.seq, n.badge, epoch);
        insert.run(
          epoch,
          keys[i],
          n.seq,
          n.type,
          n.conversationId,
          n.senderId,
          n.title,
          n.body,
          n.badge,
          n.silent ? 1 : 0,
          dataText(n),
          null,
          null,
          n.createdAt,
          n.push ? JSON.stringify(n.push) : null,
        );
      }
    },
    async queuePushes(_trx, all, now, expiresAt, hold, exceptProviders, lease) {
      pushUsers.refresh();
      const notifications = all.filter((n) => pushUsers.mayHave(n.userId));
      if (notifications.length === 0) return { queued: 0, held: 0 };
      // Without a lease no row is of a leased provider, and each is written as before.
      const leaseParameters = {
        owner: lease?.owner ?? null,
        until: lease?.until ?? null,
        leasedProviders: JSON.stringify(lease?.providers ?? []),
      };
      if (!hold) {
        // The notifications travel as one JSON parameter of [user id, notification id] pairs.
        const key = exceptProviders?.join(',') ?? '';
        let statement = queues.get(key);
        if (!statement) {
          statement = database.prepare(
            `${DELIVERY_INSERT}
             SELECT target.value ->> 1, d.user_id, d.station, d.push_provider, 'pending', ${leasedOr('1', '0')},
               ${leasedOr('@until', '@now')}, ${leasedOr('@until', 'NULL')}, ${leasedOr('@owner', 'NULL')}, @expiresAt, NULL, @now, @now
             FROM json_each(@pairs) AS target CROSS JOIN devices AS d ON d.user_id = target.value ->> 0 AND ${pushDeviceExcept(exceptProviders)}`,
          );
          queues.set(key, statement);
        }
        const pairs = JSON.stringify(notifications.map((n) => [n.userId, n.id]));
        const result = statement.run({ now, expiresAt, pairs, ...leaseParameters });
        return { queued: result.changes, held: 0, ...leasedRange(result, lease) };
      }
      // [user id, notification id, 1 when it alerts]; whether a recipient is in use is asked
      // once per recipient (materialised), not once per push device. Held rows are never leased.
      queueHolding ??= database.prepare(
        `WITH target AS MATERIALIZED (
           SELECT t.value ->> 0 AS user_id, t.value ->> 1 AS notification_id,
             t.value ->> 2 = 1 AND EXISTS (SELECT 1 FROM devices AS a
               WHERE a.user_id = t.value ->> 0 AND a.active_at IS NOT NULL AND a.active_at > @activeAfter) AS held
           FROM json_each(@triples) AS t)
         ${DELIVERY_INSERT}
         SELECT target.notification_id, d.user_id, d.station, d.push_provider,
           CASE WHEN target.held THEN 'held' ELSE 'pending' END, ${leasedOr('1', '0', 'NOT target.held AND ')},
           CASE WHEN target.held THEN @holdUntil ELSE ${leasedOr('@until', '@now')} END,
           ${leasedOr('@until', 'NULL', 'NOT target.held AND ')}, ${leasedOr('@owner', 'NULL', 'NOT target.held AND ')}, @expiresAt, NULL, @now, @now
         FROM target CROSS JOIN devices AS d ON d.user_id = target.user_id AND ${PUSH_DEVICE}`,
      );
      const triples = JSON.stringify(notifications.map((n) => [n.userId, n.id, alertsOnPush(n) ? 1 : 0]));
      const result = queueHolding.run({
        activeAfter: hold.activeAfter,
        triples,
        holdUntil: hold.until,
        now,
        expiresAt,
        ...leaseParameters,
      });
      if (result.changes === 0) return { queued: 0, held: 0 };
      // The rows of one INSERT take consecutive ids (one writer): count the held among them.
      countHeld ??= database.prepare(`SELECT count(*) FROM deliveries WHERE id > ? AND id <= ? AND state = 'held'`).pluck();
      const last = Number(result.lastInsertRowid);
      return { queued: result.changes, held: countHeld.get(last - result.changes, last) as number, ...leasedRange(result, lease) };
    },
  };
}

/**
 * A PostgreSQL array literal, passed as a text parameter and cast by the statement. Built
 * here rather than by pg, which quotes every element through two regular expressions: the
 * rows of one message repeat their type, conversation, sender, title, body and data, and
 * pg's quoting was ~10 ms of a 2,000-recipient message, spent while its rows were locked
 * (bench/micro/pg-fanout-spans.ts with --cpu-prof). Each distinct text is quoted once.
 */
export function arrayLiteral(values: readonly (string | number | boolean | null)[]): string {
  const quoted = new Map<string, string>();
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value === null) parts[i] = 'NULL';
    else if (typeof value === 'number') parts[i] = String(value);
    else if (typeof value === 'boolean') parts[i] = value ? 't' : 'f';
    else {
      let text = quoted.get(value);
      if (text === undefined) {
        // Inside double quotes only a backslash and a double quote are special.
        text = `"${value.replace(/[\\"]/g, '\\$&')}"`;
        quoted.set(value, text);
      }
      parts[i] = text;
    }
  }
  return `{${parts.join(',')}}`;
}

/** The feed rows as one array parameter per column (spread by unnest). */
function feedColumns(notifications: Notification[], keys: number[]): string[] {
  const rows = notifications.map((n, i) => notificationToRow(n, keys[i]));
  return NOTIFICATION_COLUMNS.map((name) => arrayLiteral(rows.map((r) => r[name])));
}

const FEED_ROWS_PG = `SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[],
  $7::text[], $8::integer[], $9::integer[], $10::text[], $11::varchar[], $12::bigint[], $13::bigint[], $14::text[])`;
/**
 * The epoch clock every node shares (migration 0018): one value of herald_feed_clock per row,
 * the rows in the epoch of the last one. `marked`: the feed_epochs entry of each user whose
 * feed head, by the epochs in `epochs` (one per row), was in another epoch; an entry at the
 * same first_seq is the one made with the user, before any row (0016).
 */
function feedClock(epochs: string): string {
  return `clock AS MATERIALIZED (
      SELECT max(nextval('herald_feed_clock')) / ${EPOCH_ROWS} AS epoch FROM generate_series(1, cardinality($1::bigint[]))
    ), marked AS (
      INSERT INTO feed_epochs (user_key, first_seq, epoch)
      SELECT m.k, min(m.s), (SELECT epoch FROM clock) FROM unnest($1::bigint[], $2::bigint[], ${epochs}::bigint[]) AS m(k, s, e)
      WHERE m.e IS DISTINCT FROM (SELECT epoch FROM clock) GROUP BY m.k
      ON CONFLICT (user_key, first_seq) DO UPDATE SET epoch = EXCLUDED.epoch
    )`;
}
const INSERT_FEED_ROWS_PG = `INSERT INTO notifications (epoch, ${NOTIFICATION_COLUMNS.join(', ')})
  SELECT (SELECT epoch FROM clock), * FROM (${FEED_ROWS_PG}) AS feed_rows`;
const INSERT_FEED_ROWS_CLOCKED_PG = preparedOnPostgres(`WITH ${feedClock('$15')} ${INSERT_FEED_ROWS_PG}`);
const FEED_HEADS_PG = preparedOnPostgres('SELECT * FROM herald_feed_heads($1::varchar[])');

/** The feed heads' epochs, one per row, as an array parameter (-1: not known, the row's user is marked). */
function headEpochs(notifications: Notification[], epochs: number[] | undefined): string {
  return arrayLiteral(epochs ?? notifications.map(() => -1));
}

/** Per set of providers that refuse background pushes (one, in practice). */
const withPushesText = new Map<string, string>();

/**
 * The feed rows ($1–$14), then the pushed ones' user ids, notification ids, expiries, whether
 * each is held when its user is in use, whether each is a background push ($15–$19), the hold's
 * activity bound and end, and now ($20–$22), and the feed heads' epochs ($23). The recipients
 * in use are found in one scan of the index of devices with an activity (devices_active), then
 * joined like a table.
 */
function feedRowsWithPushesText(backgroundRefusedBy: readonly string[]): string {
  const key = backgroundRefusedBy.join(',');
  let text = withPushesText.get(key);
  if (text) return text;
  if (!backgroundRefusedBy.every((p) => /^[a-z]+$/.test(p))) throw new Error(`not a provider name: ${key}`);
  const refused = backgroundRefusedBy.length
    ? `AND NOT (t.b AND d.push_provider IN (${backgroundRefusedBy.map((p) => `'${p}'`).join(', ')}))`
    : '';
  text = `WITH ${feedClock('$23')}, feed AS (${INSERT_FEED_ROWS_PG}),
    t AS (SELECT * FROM unnest($15::varchar[], $16::varchar[], $17::bigint[], $18::boolean[], $19::boolean[]) AS t(u, n, e, h, b)),
    active AS (
      SELECT DISTINCT a.user_id FROM devices AS a
      WHERE a.user_id IN (SELECT u FROM t WHERE h) AND a.active_at IS NOT NULL AND a.active_at > $20::bigint
    ), queued AS (
      ${DELIVERY_INSERT}
      SELECT t.n, d.user_id, d.station, d.push_provider, CASE WHEN t.h AND active.user_id IS NOT NULL THEN 'held' ELSE 'pending' END, 0,
             CASE WHEN t.h AND active.user_id IS NOT NULL THEN $21::bigint ELSE $22::bigint END, NULL, NULL,
             t.e, NULL, $22::bigint, $22::bigint
      FROM t JOIN devices AS d ON d.user_id = t.u AND ${PUSH_DEVICE} ${refused}
      LEFT JOIN active ON active.user_id = t.u
      RETURNING state
    )
    SELECT count(*)::integer AS queued, (count(*) FILTER (WHERE state = 'held'))::integer AS held FROM queued`;
  withPushesText.set(key, preparedOnPostgres(text));
  return text;
}

/**
 * PostgreSQL: one statement whatever the audience, with each column passed as one array
 * parameter and spread by unnest, instead of thousands of bound parameters.
 */
export const postgresBulkWriter: BulkWriter = {
  async feedHeads(trx, userIds) {
    // Locked and read in one round trip (see migrations-feed-heads.ts).
    const result = await trx.executeQuery<FeedHead>(CompiledQuery.raw(FEED_HEADS_PG, [userIds]));
    return result.rows;
  },
  async insertNotifications(trx, notifications, keys, epochs) {
    if (notifications.length === 0) return;
    await trx.executeQuery(
      CompiledQuery.raw(INSERT_FEED_ROWS_CLOCKED_PG, [...feedColumns(notifications, keys), headEpochs(notifications, epochs)]),
    );
  },
  async insertWithPushes(trx, notifications, keys, pushes, epochs) {
    if (notifications.length === 0) return { queued: 0, held: 0 };
    const p = pushes.notifications;
    const result = await trx.executeQuery<QueuedPushes>(
      CompiledQuery.raw(feedRowsWithPushesText(pushes.backgroundRefusedBy), [
        ...feedColumns(notifications, keys),
        arrayLiteral(p.map((n) => n.userId)),
        arrayLiteral(p.map((n) => n.id)),
        arrayLiteral(pushes.expiresAt),
        arrayLiteral(pushes.holdable),
        arrayLiteral(pushes.background),
        pushes.hold?.activeAfter ?? 0,
        pushes.hold?.until ?? 0,
        pushes.now,
        headEpochs(notifications, epochs),
      ]),
    );
    return result.rows[0];
  },
  async queuePushes(trx, notifications, now, expiresAt, hold, exceptProviders) {
    const users = notifications.map((n) => n.userId);
    const ids = notifications.map((n) => n.id);
    if (!hold) {
      const result = await sql<{ queued: number }>`
        WITH queued AS (
          ${sql.raw(DELIVERY_INSERT)}
          SELECT t.n, d.user_id, d.station, d.push_provider, 'pending', 0, ${now}::bigint, NULL, NULL, ${expiresAt}::bigint,
                 NULL, ${now}::bigint, ${now}::bigint
          FROM unnest(${users}::varchar[], ${ids}::varchar[]) AS t(u, n)
          JOIN devices AS d ON d.user_id = t.u AND ${sql.raw(pushDeviceExcept(exceptProviders))}
          RETURNING 1
        )
        SELECT count(*)::integer AS queued FROM queued`.execute(trx);
      return { queued: result.rows[0].queued, held: 0 };
    }
    // The recipients in use, found in one scan of the index of devices with an activity
    // (devices_active), then joined like a table: most recipients are in none of it.
    const alerting = notifications.filter(alertsOnPush).map((n) => n.userId);
    const result = await sql<QueuedPushes>`
      WITH active AS (
        SELECT DISTINCT a.user_id FROM devices AS a
        WHERE a.user_id = ANY(${alerting}::varchar[]) AND a.active_at IS NOT NULL AND a.active_at > ${hold.activeAfter}::bigint
      ), queued AS (
        ${sql.raw(DELIVERY_INSERT)}
        SELECT t.n, d.user_id, d.station, d.push_provider, CASE WHEN t.a AND active.user_id IS NOT NULL THEN 'held' ELSE 'pending' END, 0,
               CASE WHEN t.a AND active.user_id IS NOT NULL THEN ${hold.until}::bigint ELSE ${now}::bigint END, NULL, NULL,
               ${expiresAt}::bigint, NULL, ${now}::bigint, ${now}::bigint
        FROM unnest(${users}::varchar[], ${ids}::varchar[], ${notifications.map(alertsOnPush)}::boolean[]) AS t(u, n, a)
        JOIN devices AS d ON d.user_id = t.u AND ${sql.raw(PUSH_DEVICE)}
        LEFT JOIN active ON active.user_id = t.u
        RETURNING state
      )
      SELECT count(*)::integer AS queued, (count(*) FILTER (WHERE state = 'held'))::integer AS held FROM queued`.execute(trx);
    return result.rows[0];
  },
};
