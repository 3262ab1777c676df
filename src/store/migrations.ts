import { Kysely, sql } from 'kysely';
import type { HeraldMigration, MigrationContext } from './migration.ts';
import type { Dialect } from './schema.ts';
import { web3mqMigration } from './migrations-web3mq.ts';
import { gatewayMigration } from './migrations-gateway.ts';
import { apiTokensMigration } from './migrations-api-tokens.ts';
import { presenceHoldMigration } from './migrations-presence-hold.ts';
import { preferencesMigration } from './migrations-preferences.ts';
import { secretsAtRestMigration } from './migrations-secrets.ts';
import { feedHeadsByIndexMigration, feedHeadsMigration, feedHeadsOnceMigration } from './migrations-feed-heads.ts';
import { feedEpochClockMigration, feedEpochsMigration } from './migrations-feed-epochs.ts';
import type { SecretBox } from './secrets.ts';
import { ConfigError } from '../config.ts';

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
      .addColumn('conversation_id', 'varchar(64)', (c) => c.notNull().references('conversations.id').onDelete('cascade'))
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
    await (
      dialect === 'sqlite'
        ? messages.addColumn('seq', serial, (c) => c.primaryKey().autoIncrement())
        : messages.addColumn('seq', serial, (c) => c.primaryKey())
    )
      .addColumn('conversation_id', 'varchar(64)', (c) => c.notNull().references('conversations.id').onDelete('cascade'))
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
    await (
      dialect === 'sqlite'
        ? reports.addColumn('seq', serial, (c) => c.primaryKey().autoIncrement())
        : reports.addColumn('seq', serial, (c) => c.primaryKey())
    )
      .addColumn('conversation_id', 'varchar(64)', (c) => c.notNull().references('conversations.id').onDelete('cascade'))
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
    await (
      dialect === 'sqlite'
        ? deliveries.addColumn('id', serial, (c) => c.primaryKey().autoIncrement())
        : deliveries.addColumn('id', serial, (c) => c.primaryKey())
    )
      .addColumn('notification_id', 'varchar(64)', (c) => c.notNull().references('notifications.id').onDelete('cascade'))
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
    await db.schema.createIndex('deliveries_due').on('deliveries').columns(['state', 'next_attempt_at']).execute();
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

/**
 * The feed keyed by a small integer of each user instead of the user's 32-character id, and
 * without an index of notification ids (an id is now made from the user key and the
 * sequence number, see notificationId): a group message writes one feed row per recipient,
 * and those two indexes made up most of its cost (`bench/micro/feed-layout.ts`: 24.6 → 10.9
 * µs per row). Outbox rows keep their notification's id, rewritten to the new form, and no
 * longer hold a foreign key to it (the outbox already copes with a notification that is gone).
 *
 * The feed's newest row is also the one record of where it stands (its sequence number and
 * badge), so `users` no longer counts them: a message no longer updates one `users` row per
 * recipient besides appending to its feed.
 */
const feedByUserKey: HeraldMigration = ({ dialect }) => ({
  async up(db: Kysely<any>) {
    if (dialect === 'postgres') {
      await sql`ALTER TABLE users ADD COLUMN key bigserial`.execute(db);
      await sql`CREATE UNIQUE INDEX users_key ON users (key)`.execute(db);
      await sql`ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_notification_id_fkey`.execute(db);
      await sql`ALTER TABLE notifications ADD COLUMN user_key bigint`.execute(db);
      await sql`UPDATE notifications SET user_key = users.key FROM users WHERE users.id = notifications.user_id`.execute(db);
      await sql`DELETE FROM notifications WHERE user_key IS NULL`.execute(db);
      await sql`UPDATE deliveries SET notification_id =
                  lpad(to_hex(n.user_key >> 16), 8, '0') || '-' || lpad(to_hex(n.user_key & 65535), 4, '0') || '-8000-8'
                  || lpad(to_hex(n.seq >> 48), 3, '0') || '-' || lpad(to_hex(n.seq & 281474976710655), 12, '0')
                FROM notifications n WHERE n.id = deliveries.notification_id`.execute(db);
      await sql`ALTER TABLE notifications DROP COLUMN id, DROP COLUMN user_id, ALTER COLUMN user_key SET NOT NULL`.execute(db);
      await sql`ALTER TABLE notifications ADD CONSTRAINT notifications_user_seq UNIQUE (user_key, seq)`.execute(db);
      await sql`ALTER TABLE users DROP COLUMN last_seq, DROP COLUMN unread_total`.execute(db);
      return;
    }
    // SQLite: keys come from a table of their own, so a key is never handed out twice.
    await sql`CREATE TABLE user_keys (key INTEGER PRIMARY KEY AUTOINCREMENT)`.execute(db);
    await sql`ALTER TABLE users ADD COLUMN key integer`.execute(db);
    await sql`UPDATE users SET key = rowid`.execute(db);
    await sql`INSERT INTO user_keys (key) SELECT key FROM users`.execute(db);
    await sql`CREATE UNIQUE INDEX users_key ON users (key)`.execute(db);
    await sql`CREATE TRIGGER users_key_given AFTER INSERT ON users FOR EACH ROW WHEN NEW.key IS NULL BEGIN
                INSERT INTO user_keys (key) VALUES (NULL);
                UPDATE users SET key = last_insert_rowid() WHERE rowid = NEW.rowid;
              END`.execute(db);
    // Tables are rebuilt to change their columns. The outbox goes first: dropping the old
    // feed while the outbox still referred to it would delete the outbox rows with it.
    await sql`CREATE TABLE notifications_by_key (
                user_key integer NOT NULL, seq integer NOT NULL, type varchar(64) NOT NULL,
                conversation_id varchar(200), sender_id varchar(200), title varchar(400) NOT NULL,
                body text NOT NULL, badge integer NOT NULL, silent integer NOT NULL, data text NOT NULL,
                status varchar(16), status_at integer, created_at integer NOT NULL,
                CONSTRAINT notifications_user_seq UNIQUE (user_key, seq))`.execute(db);
    await sql`INSERT INTO notifications_by_key
              SELECT users.key, n.seq, n.type, n.conversation_id, n.sender_id, n.title, n.body, n.badge, n.silent,
                     n.data, n.status, n.status_at, n.created_at
              FROM notifications n JOIN users ON users.id = n.user_id ORDER BY n.rowid`.execute(db);
    await sql`CREATE TABLE deliveries_unbound (
                id integer PRIMARY KEY AUTOINCREMENT, notification_id varchar(64) NOT NULL,
                user_id varchar(64) NOT NULL, station varchar(64) NOT NULL, provider varchar(16) NOT NULL,
                state varchar(16) NOT NULL, attempts integer NOT NULL DEFAULT 0, next_attempt_at integer NOT NULL,
                lease_until integer, lease_owner varchar(64), expires_at integer NOT NULL,
                last_error varchar(400), created_at integer NOT NULL, updated_at integer NOT NULL)`.execute(db);
    await sql`INSERT INTO deliveries_unbound
              SELECT d.id, coalesce(printf('%08x-%04x-8000-8%03x-%012x', u.key >> 16, u.key & 65535, n.seq >> 48,
                                           n.seq & 281474976710655), d.notification_id),
                     d.user_id, d.station, d.provider, d.state, d.attempts, d.next_attempt_at, d.lease_until,
                     d.lease_owner, d.expires_at, d.last_error, d.created_at, d.updated_at
              FROM deliveries d LEFT JOIN notifications n ON n.id = d.notification_id
                                LEFT JOIN users u ON u.id = n.user_id
              ORDER BY d.id`.execute(db);
    await sql`DROP TABLE deliveries`.execute(db);
    await sql`ALTER TABLE deliveries_unbound RENAME TO deliveries`.execute(db);
    await sql`CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending'`.execute(db);
    await sql`DROP TABLE notifications`.execute(db);
    await sql`ALTER TABLE notifications_by_key RENAME TO notifications`.execute(db);
    await sql`ALTER TABLE users DROP COLUMN last_seq`.execute(db);
    await sql`ALTER TABLE users DROP COLUMN unread_total`.execute(db);
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
  ['0008_feed_by_user_key', feedByUserKey],
  ['0009_api_tokens', apiTokensMigration],
  ['0010_gateway_sends', gatewayMigration],
  ['0011_presence_hold', presenceHoldMigration],
  ['0012_preferences', preferencesMigration],
  ['0013_secrets_at_rest', secretsAtRestMigration],
  ['0014_feed_heads_in_one_trip', feedHeadsMigration],
  ['0015_feed_heads_by_index', feedHeadsByIndexMigration],
  ['0016_feed_by_epoch', feedEpochsMigration],
  ['0017_feed_heads_found_once', feedHeadsOnceMigration],
  ['0018_feed_epoch_clock', feedEpochClockMigration],
];

/** The migration after which no secret lies in the database in the clear. */
export const SECRETS_SEALED = '0013_secrets_at_rest';

/** Where applied migrations are recorded, in the store's own schema. */
const MIGRATION_TABLE = 'herald_migration';

/**
 * Applies the migrations not yet recorded, all in one transaction. On PostgreSQL an advisory
 * lock keyed by the schema makes nodes that start together take turns (the first one makes the
 * schema when it is given and missing), and nothing here reads
 * another schema's catalog, so stores in neighbouring schemas migrate (and are dropped) side by
 * side without tripping over each other.
 */
export async function migrateToLatest(
  db: Kysely<any>,
  dialect: Dialect,
  /** The data key; the database's check value must be this key's (see checkDataKey). */
  secrets: SecretBox,
  pgSchema?: string,
  /** Stop after this migration (tests of a migration start from the one before it). */
  through?: string,
): Promise<string[]> {
  const ctx: MigrationContext = {
    dialect,
    serial: dialect === 'sqlite' ? 'integer' : 'bigserial',
    time: dialect === 'sqlite' ? 'integer' : 'bigint',
    secrets,
  };
  let current = '';
  const appliedNow: string[] = [];
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
        if (!applied.has(name)) {
          current = name;
          await make(ctx).up(trx);
          await trx.insertInto(MIGRATION_TABLE).values({ name, applied_at: Date.now() }).execute();
          appliedNow.push(name);
        }
        if (name === through) break;
      }
      current = '';
      await checkDataKey(trx, secrets);
    });
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new Error(`database migration ${current} failed: ${String(error)}`, { cause: error });
  }
  return appliedNow;
}

/**
 * Refuses a data key other than the one the database's secrets were sealed with: a node
 * holding it would fail every login and every UDP datagram. (Nothing to check before the
 * secrets were sealed.)
 */
async function checkDataKey(db: Kysely<any>, secrets: SecretBox): Promise<void> {
  const sealed = await db.selectFrom(MIGRATION_TABLE).select('name').where('name', '=', SECRETS_SEALED).executeTakeFirst();
  if (!sealed) return;
  const row = await db.selectFrom('herald_data_key').select('check_value').where('id', '=', 1).executeTakeFirst();
  if (row?.check_value !== secrets.checkValue) {
    throw new ConfigError(
      'the data key is not the one this database was sealed with: set HERALD_SECRET_KEY to the key of the other nodes, or put back the secret.key the database was made with',
    );
  }
}

export { sql };
