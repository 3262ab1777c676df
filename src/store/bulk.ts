import type SQLite from 'better-sqlite3';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.ts';
import { dataText, notificationToRow, type Notification } from '../notify/model.ts';

type Db = Kysely<Database> | Transaction<Database>;

export interface SequenceSlot {
  id: string;
  /** The user's key: the feed's rows are filed under it. */
  key: number;
  last_seq: number;
  unread_total: number;
}

/**
 * The two statements of the hot path whose size grows with the audience of a message,
 * written per database: handing out sequence numbers (and moving badges) for many users,
 * and appending many feed rows. Both run inside the caller's transaction.
 */
/** One user's share of a batch: how many notifications, and how much their unread total moves. */
export interface SequenceClaim {
  id: string;
  count: number;
  unread: number;
}

/** One push delivery to queue: a notification for one push device. */
export interface NewDelivery {
  notificationId: string;
  userId: string;
  station: string;
  provider: string;
}

export interface BulkWriter {
  advanceSequences(trx: Db, claims: SequenceClaim[]): Promise<SequenceSlot[]>;
  /** Feed rows; `keys[i]` is the user key of `notifications[i]`'s recipient. */
  insertNotifications(trx: Db, notifications: Notification[], keys: number[]): Promise<void>;
  /** Outbox rows, pending and due at `now`, given up at `expiresAt`. */
  insertDeliveries(trx: Db, deliveries: NewDelivery[], now: number, expiresAt: number): Promise<void>;
}

const DELIVERY_INSERT = `INSERT INTO deliveries (notification_id, user_id, station, provider, state, attempts, next_attempt_at,
  lease_until, lease_owner, expires_at, last_error, created_at, updated_at)`;

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
] as const;

/**
 * SQLite: prepared statements run on the connection that holds the transaction, so no SQL
 * text is built or parsed per call (a multi-row INSERT would be compiled and prepared anew
 * each time). The sequence update takes the whole audience as one JSON parameter that
 * SQLite unpacks with json_each: one statement instead of one round trip per recipient.
 */
export function sqliteBulkWriter(database: SQLite.Database): BulkWriter {
  let advance: SQLite.Statement | undefined;
  let insert: SQLite.Statement | undefined;
  let deliver: SQLite.Statement | undefined;
  return {
    async advanceSequences(_trx, claims) {
      // The audience travels as one JSON parameter and is unpacked by SQLite itself.
      advance ??= database.prepare(
        `UPDATE users SET last_seq = last_seq + claim.count, unread_total = unread_total + claim.unread
         FROM (SELECT value ->> 0 AS id, value ->> 1 AS count, value ->> 2 AS unread FROM json_each(?)) AS claim
         WHERE users.id = claim.id
         RETURNING users.id, users.key, users.last_seq, users.unread_total`,
      );
      return advance.all(JSON.stringify(claims.map((c) => [c.id, c.count, c.unread]))) as SequenceSlot[];
    },
    async insertNotifications(_trx, notifications, keys) {
      // Row by row through one prepared statement: cheaper here than unpacking JSON per
      // column (measured: 6 µs against 17 µs a row for a 2,000-recipient message). Bound
      // straight from each notification: a just-made row is neither delivered nor read.
      insert ??= database.prepare(
        `INSERT INTO notifications (${NOTIFICATION_COLUMNS.join(', ')}) VALUES (${NOTIFICATION_COLUMNS.map(() => '?').join(', ')})`,
      );
      for (let i = 0; i < notifications.length; i++) {
        const n = notifications[i];
        insert.run(
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
        );
      }
    },
    async insertDeliveries(_trx, deliveries, now, expiresAt) {
      deliver ??= database.prepare(`${DELIVERY_INSERT} VALUES (?, ?, ?, ?, 'pending', 0, ?, NULL, NULL, ?, NULL, ?, ?)`);
      for (const d of deliveries) deliver.run(d.notificationId, d.userId, d.station, d.provider, now, expiresAt, now, now);
    },
  };
}

/**
 * PostgreSQL: one statement whatever the audience, with each column passed as one array
 * parameter and spread by unnest, instead of thousands of bound parameters.
 */
export const postgresBulkWriter: BulkWriter = {
  async advanceSequences(trx, claims) {
    // Rows are locked in id order, so two bursts to overlapping audiences do not deadlock.
    const result = await sql<SequenceSlot>`
      WITH claim AS (
        SELECT * FROM unnest(${claims.map((c) => c.id)}::varchar[], ${claims.map((c) => c.count)}::bigint[],
                             ${claims.map((c) => c.unread)}::integer[]) AS t(id, count, unread)
      ), locked AS (
        SELECT users.id FROM users JOIN claim ON claim.id = users.id ORDER BY users.id FOR UPDATE OF users
      )
      UPDATE users SET last_seq = users.last_seq + claim.count, unread_total = users.unread_total + claim.unread
      FROM claim, locked
      WHERE users.id = claim.id AND locked.id = users.id
      RETURNING users.id, users.key, users.last_seq, users.unread_total`.execute(trx);
    return result.rows;
  },
  async insertNotifications(trx, notifications, keys) {
    if (notifications.length === 0) return;
    const rows = notifications.map((n, i) => notificationToRow(n, keys[i]));
    const column = <K extends (typeof NOTIFICATION_COLUMNS)[number]>(name: K) => rows.map((r) => r[name]);
    await sql`
      INSERT INTO notifications (${sql.raw(NOTIFICATION_COLUMNS.join(', '))})
      SELECT * FROM unnest(
        ${column('user_key')}::bigint[], ${column('seq')}::bigint[],
        ${column('type')}::varchar[], ${column('conversation_id')}::varchar[], ${column('sender_id')}::varchar[],
        ${column('title')}::varchar[], ${column('body')}::text[], ${column('badge')}::integer[],
        ${column('silent')}::integer[], ${column('data')}::text[], ${column('status')}::varchar[],
        ${column('status_at')}::bigint[], ${column('created_at')}::bigint[])`.execute(trx);
  },
  async insertDeliveries(trx, deliveries, now, expiresAt) {
    if (deliveries.length === 0) return;
    await sql`
      ${sql.raw(DELIVERY_INSERT)}
      SELECT n, u, s, p, 'pending', 0, ${now}::bigint, NULL, NULL, ${expiresAt}::bigint, NULL, ${now}::bigint, ${now}::bigint
      FROM unnest(${deliveries.map((d) => d.notificationId)}::varchar[], ${deliveries.map((d) => d.userId)}::varchar[],
                  ${deliveries.map((d) => d.station)}::varchar[], ${deliveries.map((d) => d.provider)}::varchar[]) AS t(n, u, s, p)`.execute(trx);
  },
};

/** Portable version through Kysely's builder; used where no database-specific writer is given. */
export const portableBulkWriter: BulkWriter = {
  async advanceSequences(trx, claims) {
    // Users whose claims are alike share one UPDATE.
    const groups = new Map<string, { count: number; unread: number; ids: string[] }>();
    for (const claim of claims) {
      const key = `${claim.count}:${claim.unread}`;
      const group = groups.get(key) ?? { count: claim.count, unread: claim.unread, ids: [] };
      group.ids.push(claim.id);
      groups.set(key, group);
    }
    const slots: SequenceSlot[] = [];
    for (const { count, unread, ids } of groups.values()) {
      ids.sort();
      for (let i = 0; i < ids.length; i += PORTABLE_CHUNK) {
        const rows = await trx
          .updateTable('users')
          .set((eb) => ({ last_seq: eb('last_seq', '+', count), unread_total: eb('unread_total', '+', unread) }))
          .where('id', 'in', ids.slice(i, i + PORTABLE_CHUNK))
          .returning(['id', 'key', 'last_seq', 'unread_total'])
          .execute();
        slots.push(...rows);
      }
    }
    return slots;
  },
  async insertNotifications(trx, notifications, keys) {
    const rows = notifications.map((n, i) => notificationToRow(n, keys[i]));
    for (let i = 0; i < rows.length; i += PORTABLE_CHUNK) {
      await trx.insertInto('notifications').values(rows.slice(i, i + PORTABLE_CHUNK)).execute();
    }
  },
  async insertDeliveries(trx, deliveries, now, expiresAt) {
    const rows = deliveries.map((d) => ({
      notification_id: d.notificationId,
      user_id: d.userId,
      station: d.station,
      provider: d.provider,
      state: 'pending',
      attempts: 0,
      next_attempt_at: now,
      lease_until: null,
      lease_owner: null,
      expires_at: expiresAt,
      last_error: null,
      created_at: now,
      updated_at: now,
    }));
    for (let i = 0; i < rows.length; i += PORTABLE_CHUNK) {
      await trx.insertInto('deliveries').values(rows.slice(i, i + PORTABLE_CHUNK)).execute();
    }
  },
};

/** Rows per multi-row statement; keeps SQLite well under its bound-parameter limit. */
const PORTABLE_CHUNK = 500;
