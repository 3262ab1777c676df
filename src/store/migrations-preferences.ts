import { sql, type Kysely } from 'kysely';
import type { HeraldMigration } from './migration.ts';

/**
 * What a user asked about alerts: do-not-disturb and quiet hours (one row per user who set
 * any), conversations muted until a time, and the kinds each device alerts for. None of it
 * removes anything from the feed; it only decides whether a notification alerts.
 */
export const preferencesMigration: HeraldMigration = ({ time }) => ({
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('user_preferences')
      .addColumn('user_id', 'varchar(64)', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
      .addColumn('dnd_until', time)
      // Quiet hours: all four set, or all four null.
      .addColumn('quiet_start', 'varchar(5)')
      .addColumn('quiet_end', 'varchar(5)')
      .addColumn('quiet_zone', 'varchar(64)')
      .addColumn('quiet_days', 'varchar(32)')
      .addColumn('updated_at', time, (c) => c.notNull())
      .execute();

    // Any conversation id a notification may carry: a chat conversation or a gateway sender's thread.
    await db.schema
      .createTable('conversation_mutes')
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('conversation_id', 'varchar(200)', (c) => c.notNull())
      .addColumn('until', time, (c) => c.notNull())
      .addPrimaryKeyConstraint('conversation_mutes_pk', ['user_id', 'conversation_id'])
      .execute();
    // Each node re-reads the mutes still running every minute.
    await db.schema.createIndex('conversation_mutes_until').on('conversation_mutes').column('until').execute();

    // Null: every kind alerts (every device registered before this migration keeps alerting).
    await db.schema.alterTable('devices').addColumn('alert_kinds', 'text').execute();
    // Only the few devices with a list, which each node re-reads every minute.
    await sql`CREATE INDEX devices_alert_kinds ON devices (user_id, station) WHERE alert_kinds IS NOT NULL`.execute(db);
  },
});
