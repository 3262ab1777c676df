import type { Kysely } from 'kysely';
import type { HeraldMigration } from './migration.ts';

/**
 * What the gateway API (`/v1/notifications`) keeps beyond the feed: the sender's push options
 * on each notification, the unread count of each thread another backend sends into, and the
 * answers to calls made with an `Idempotency-Key`.
 */
export const gatewayMigration: HeraldMigration = ({ time }) => ({
  async up(db: Kysely<any>) {
    // Null for every notification that keeps the defaults: nothing is rewritten.
    await db.schema.alterTable('notifications').addColumn('push_options', 'text').execute();

    // A thread is the backend's conversation id ('' for notifications without one); its unread
    // count is what reading it takes off the badge.
    await db.schema
      .createTable('thread_unread')
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('thread_id', 'varchar(200)', (c) => c.notNull())
      .addColumn('unread', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('thread_unread_pk', ['user_id', 'thread_id'])
      .execute();

    // One row per (caller, key): the first call's request digest and answer.
    await db.schema
      .createTable('idempotency_keys')
      .addColumn('caller', 'varchar(64)', (c) => c.notNull())
      .addColumn('key', 'varchar(255)', (c) => c.notNull())
      .addColumn('request_hash', 'varchar(64)', (c) => c.notNull())
      .addColumn('answer', 'text')
      .addColumn('created_at', time, (c) => c.notNull())
      .addPrimaryKeyConstraint('idempotency_keys_pk', ['caller', 'key'])
      .execute();
    await db.schema.createIndex('idempotency_keys_created').on('idempotency_keys').column('created_at').execute();
  },
});
