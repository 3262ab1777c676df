import { sql, type Kysely } from 'kysely';
import type { HeraldMigration } from './migration.ts';

/**
 * Presence-aware push hold: when each device was last in use and the highest sequence it
 * acknowledged while in use, and outbox rows that wait (`held`) for the user to see their
 * notification elsewhere before they alert.
 */
export const presenceHoldMigration: HeraldMigration = ({ time }) => ({
  async up(db: Kysely<any>) {
    // Null while the device is idle or has no live connection: nothing is rewritten.
    await db.schema.alterTable('devices').addColumn('active_at', time).execute();
    await db.schema
      .alterTable('devices')
      .addColumn('seen_seq', time, (c) => c.notNull().defaultTo(0))
      .execute();
    // The hold asks, per recipient, whether one of their devices is in use: only devices
    // with an activity are in this index, so for most recipients the answer is one probe.
    await sql`CREATE INDEX devices_active ON devices (user_id, active_at) WHERE active_at IS NOT NULL`.execute(db);
    // Held rows are due like pending ones, so the claim's index holds both.
    await db.schema.dropIndex('deliveries_due').execute();
    await sql`CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('pending', 'held')`.execute(db);
  },
});
