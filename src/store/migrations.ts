import { Kysely, sql, type Migration } from 'kysely';
import type { Dialect } from './db.ts';
import { web3mqMigration } from './migrations-web3mq.ts';

/**
 * One set of migrations for both databases. The few places where SQLite and PostgreSQL
 * differ (auto-increment keys, 64-bit times) go through `serial` and `time`.
 */
export interface MigrationContext {
  dialect: Dialect;
  /** Column type of an auto-incremented primary key. */
  serial: 'integer' | 'bigserial';
  /** Column type for unix-millisecond times and other 64-bit counts. */
  time: 'integer' | 'bigint';
}

export type HeraldMigration = (ctx: MigrationContext) => Migration;

const initial: HeraldMigration = ({ serial, time, dialect }) => ({
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('users')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('email', 'varchar(320)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(200)', (c) => c.notNull())
      .addColumn('nick', 'varchar(100)', (c) => c.notNull())
      .addColumn('apikey', 'varchar(100)', (c) => c.notNull().unique())
      .addColumn('availability', 'varchar(32)', (c) => c.notNull().defaultTo('offline'))
      .addColumn('availability_changed_at', time, (c) => c.notNull().defaultTo(0))
      .addColumn('last_seq', time, (c) => c.notNull().defaultTo(0))
      .addColumn('unread_total', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', time, (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('devices')
      .addColumn('station', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('platform', 'varchar(16)', (c) => c.notNull())
      .addColumn('udp_secret', 'varchar(128)')
      .addColumn('push_provider', 'varchar(16)')
      .addColumn('push_token', 'varchar(2048)')
      .addColumn('push_keys', 'text')
      .addColumn('push_disabled_at', time)
      .addColumn('push_disabled_reason', 'varchar(200)')
      .addColumn('acked_seq', time, (c) => c.notNull().defaultTo(0))
      .addColumn('delivered_seq', time, (c) => c.notNull().defaultTo(0))
      .addColumn('last_seen_at', time, (c) => c.notNull())
      .addColumn('created_at', time, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('devices_user').on('devices').column('user_id').execute();
    await db.schema.createIndex('devices_push_token').on('devices').columns(['push_provider', 'push_token']).execute();

    await db.schema
      .createTable('friendships')
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('friend_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('created_at', time, (c) => c.notNull())
      .addPrimaryKeyConstraint('friendships_pk', ['user_id', 'friend_id'])
      .execute();

    await db.schema
      .createTable('blocks')
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('blocked_user_id', 'varchar(64)')
      .addColumn('blocked_conversation_id', 'varchar(64)')
      .addColumn('created_at', time, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('blocks_user').on('blocks').column('user_id').execute();

    await db.schema
      .createTable('conversations')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('is_group', 'integer', (c) => c.notNull())
      .addColumn('display_name', 'varchar(200)', (c) => c.notNull().defaultTo(''))
      .addColumn('secret', 'varchar(200)', (c) => c.notNull().defaultTo(''))
      .addColumn('instance', 'varchar(200)', (c) => c.notNull().defaultTo(''))
      .addColumn('created_by', 'varchar(64)', (c) => c.notNull())
      .addColumn('last_message_id', 'varchar(200)', (c) => c.notNull().defaultTo(''))
      .addColumn('last_report_id', 'varchar(200)', (c) => c.notNull().defaultTo(''))
      .addColumn('changed_at', time, (c) => c.notNull())
      .addColumn('created_at', time, (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('participants')
      .addColumn('conversation_id', 'varchar(64)', (c) =>
        c.notNull().references('conversations.id').onDelete('cascade'),
      )
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('is_muted', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('is_favorite', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('hide_id', 'varchar(200)', (c) => c.notNull().defaultTo(''))
      .addColumn('background_color', 'varchar(32)', (c) => c.notNull().defaultTo(''))
      .addColumn('unread_count', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('last_access_at', time, (c) => c.notNull().defaultTo(0))
      .addColumn('list_changed_at', time, (c) => c.notNull())
      .addColumn('cleared_before_seq', time, (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('participants_pk', ['conversation_id', 'user_id'])
      .execute();
    await db.schema.createIndex('participants_user').on('participants').column('user_id').execute();

    const messages = db.schema.createTable('messages');
    await (dialect === 'sqlite'
      ? messages.addColumn('seq', serial, (c) => c.primaryKey().autoIncrement())
      : messages.addColumn('seq', serial, (c) => c.primaryKey())
    )
      .addColumn('conversation_id', 'varchar(64)', (c) =>
        c.notNull().references('conversations.id').onDelete('cascade'),
      )
      .addColumn('id', 'varchar(200)', (c) => c.notNull())
      .addColumn('sender_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('type', 'varchar(64)', (c) => c.notNull())
      .addColumn('created', 'varchar(64)', (c) => c.notNull())
      .addColumn('valid_until', 'varchar(64)', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addColumn('received_at', time, (c) => c.notNull())
      .addUniqueConstraint('messages_conversation_id', ['conversation_id', 'id'])
      .execute();

    const reports = db.schema.createTable('reports');
    await (dialect === 'sqlite'
      ? reports.addColumn('seq', serial, (c) => c.primaryKey().autoIncrement())
      : reports.addColumn('seq', serial, (c) => c.primaryKey())
    )
      .addColumn('conversation_id', 'varchar(64)', (c) =>
        c.notNull().references('conversations.id').onDelete('cascade'),
      )
      .addColumn('id', 'varchar(200)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('type', 'varchar(32)', (c) => c.notNull())
      .addColumn('created', 'varchar(64)', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('received_at', time, (c) => c.notNull())
      .addUniqueConstraint('reports_conversation_id', ['conversation_id', 'id'])
      .execute();

    // No foreign key on user_id: it would cost a look-up (on PostgreSQL a trigger and a row
    // lock) per recipient on the hot path, and feed rows are only written for users that
    // the same transaction has just advanced the sequence of.
    await db.schema
      .createTable('notifications')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('seq', time, (c) => c.notNull())
      .addColumn('type', 'varchar(64)', (c) => c.notNull())
      .addColumn('conversation_id', 'varchar(200)')
      .addColumn('sender_id', 'varchar(200)')
      .addColumn('title', 'varchar(400)', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('badge', 'integer', (c) => c.notNull())
      .addColumn('silent', 'integer', (c) => c.notNull())
      .addColumn('data', 'text', (c) => c.notNull())
      .addColumn('status', 'varchar(16)')
      .addColumn('status_at', time)
      .addColumn('created_at', time, (c) => c.notNull())
      .addUniqueConstraint('notifications_user_seq', ['user_id', 'seq'])
      .execute();

    const deliveries = db.schema.createTable('deliveries');
    await (dialect === 'sqlite'
      ? deliveries.addColumn('id', serial, (c) => c.primaryKey().autoIncrement())
      : deliveries.addColumn('id', serial, (c) => c.primaryKey())
    )
      .addColumn('notification_id', 'varchar(64)', (c) =>
        c.notNull().references('notifications.id').onDelete('cascade'),
      )
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('station', 'varchar(64)', (c) => c.notNull())
      .addColumn('provider', 'varchar(16)', (c) => c.notNull())
      .addColumn('state', 'varchar(16)', (c) => c.notNull())
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('next_attempt_at', time, (c) => c.notNull())
      .addColumn('lease_until', time)
      .addColumn('lease_owner', 'varchar(64)')
      .addColumn('expires_at', time, (c) => c.notNull())
      .addColumn('last_error', 'varchar(400)')
      .addColumn('created_at', time, (c) => c.notNull())
      .addColumn('updated_at', time, (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('deliveries_due')
      .on('deliveries')
      .columns(['state', 'next_attempt_at'])
      .execute();
  },
});

/**
 * PostgreSQL: every message updates one row per recipient in `users` (sequence, badge) and
 * in `participants` (unread count). Free room in each page lets those be HOT updates that
 * touch no index.
 */
const roomForHotUpdates: HeraldMigration = ({ dialect }) => ({
  async up(db: Kysely<any>) {
    if (dialect !== 'postgres') return;
    for (const table of ['users', 'participants', 'devices', 'deliveries']) {
      await sql`ALTER TABLE ${sql.table(table)} SET (fillfactor = 60)`.execute(db);
    }
  },
});

/**
 * Every message asks which participants blocked its sender or its conversation: without
 * these indexes that question reads the whole block list of every user.
 */
const blockLookups: HeraldMigration = () => ({
  async up(db: Kysely<any>) {
    await db.schema.createIndex('blocks_blocked_user').on('blocks').column('blocked_user_id').execute();
    await db.schema.createIndex('blocks_blocked_conversation').on('blocks').column('blocked_conversation_id').execute();
  },
});

/**
 * Every message asks which of its recipients' devices take pushes. Most devices do not
 * (browsers and desktops are reached live), so an index of just the push devices, holding
 * what the outbox needs, answers for a whole group without reading a device row.
 */
const pushDeviceLookups: HeraldMigration = () => ({
  async up(db: Kysely<any>) {
    await sql`CREATE INDEX devices_push_user ON devices (user_id, station, push_provider)
              WHERE push_token IS NOT NULL AND push_provider IS NOT NULL AND push_disabled_at IS NULL`.execute(db);
  },
});

/**
 * The claim looks only at pending rows, and a row that ends (delivered, dead, failed,
 * expired) never becomes pending again: an index of pending rows alone stays the size of the
 * backlog, not of every push ever sent, and an outcome takes a row out of it rather than
 * moving it inside.
 */
const pendingDeliveriesOnly: HeraldMigration = () => ({
  async up(db: Kysely<any>) {
    await db.schema.dropIndex('deliveries_due').execute();
    await sql`CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending'`.execute(db);
  },
});

/** Every migration, in order. New parts of Herald append theirs here. */
export const migrations: Array<[string, HeraldMigration]> = [
  ['0001_initial', initial],
  ['0003_web3mq', web3mqMigration],
  ['0004_room_for_hot_updates', roomForHotUpdates],
  ['0005_block_lookups', blockLookups],
  ['0006_push_device_lookups', pushDeviceLookups],
  ['0007_pending_deliveries_only', pendingDeliveriesOnly],
];

/** Where applied migrations are recorded, in the store's own schema. */
const MIGRATION_TABLE = 'herald_migration';

/**
 * Applies the migrations not yet recorded, all in one transaction. On PostgreSQL an advisory
 * lock keyed by the schema makes nodes that start together take turns (the first one makes the
 * schema when it is given and missing), and nothing here reads
 * another schema's catalog, so stores in neighbouring schemas migrate (and are dropped) side by
 * side without tripping over each other.
 */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect, pgSchema?: string): Promise<void> {
  const ctx: MigrationContext = {
    dialect,
    serial: dialect === 'sqlite' ? 'integer' : 'bigserial',
    time: dialect === 'sqlite' ? 'integer' : 'bigint',
  };
  let current = '';
  try {
    await db.transaction().execute(async (trx) => {
      if (dialect === 'postgres') {
        const schema = pgSchema ?? 'public';
        await sql`select pg_advisory_xact_lock(hashtext(${`${MIGRATION_TABLE}:${schema}`}))`.execute(trx);
        if (pgSchema) await sql`create schema if not exists ${sql.id(pgSchema)}`.execute(trx);
      }
      await trx.schema
        .createTable(MIGRATION_TABLE)
        .ifNotExists()
        .addColumn('name', 'varchar(255)', (c) => c.primaryKey())
        .addColumn('applied_at', ctx.time, (c) => c.notNull())
        .execute();
      const applied = new Set((await trx.selectFrom(MIGRATION_TABLE).select('name').execute()).map((r) => r.name as string));
      for (const [name, make] of migrations) {
        if (applied.has(name)) continue;
        current = name;
        await make(ctx).up(trx);
        await trx.insertInto(MIGRATION_TABLE).values({ name, applied_at: Date.now() }).execute();
      }
    });
  } catch (error) {
    throw new Error(`database migration ${current} failed: ${String(error)}`, { cause: error });
  }
}

export { sql };
