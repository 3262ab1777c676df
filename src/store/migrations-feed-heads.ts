import { sql, type Kysely } from 'kysely';
import type { HeraldMigration } from './migration.ts';

/**
 * PostgreSQL: where many users' feeds stand, locked and read in one round trip. The users'
 * rows are locked first, in id order (two bursts to overlapping audiences never deadlock on
 * them), and each feed is read after its lock was granted. In one plain statement the read
 * would use the statement's snapshot, taken before it waited for a lock, and miss what the
 * lock's previous holder committed; a PL/pgSQL function is never inlined, and each of its
 * statements takes a fresh snapshot (READ COMMITTED). NO KEY UPDATE: the key stays, so rows
 * written elsewhere that refer to the user (their foreign key checks take KEY SHARE) do not
 * wait for the feed. SQLite has one writer and needs none.
 */
export const feedHeadsMigration: HeraldMigration = ({ dialect }) => ({
  async up(db: Kysely<any>) {
    if (dialect !== 'postgres') return;
    await sql`
      CREATE FUNCTION herald_feed_heads(wanted varchar[])
      RETURNS TABLE (id varchar, key bigint, seq bigint, badge integer)
      LANGUAGE plpgsql VOLATILE AS $$
      #variable_conflict use_column
      BEGIN
        -- Joined from the wanted ids, each found through the primary key: = ANY(wanted) over
        -- users reads every user (a sequential scan per call, half of a message's database time).
        PERFORM 1 FROM unnest(wanted) AS w(id) JOIN users AS u ON u.id = w.id ORDER BY u.id FOR NO KEY UPDATE OF u;
        RETURN QUERY
          SELECT u.id::varchar, u.key::bigint, coalesce(head.seq, 0)::bigint, coalesce(head.badge, 0)::integer
          FROM unnest(wanted) AS w(id) JOIN users AS u ON u.id = w.id LEFT JOIN LATERAL (
            SELECT n.seq, n.badge FROM notifications AS n WHERE n.user_key = u.key ORDER BY n.seq DESC LIMIT 1
          ) AS head ON true;
      END
      $$`.execute(db);
  },
});

/**
 * PostgreSQL: herald_feed_heads again, planned once per connection and with each user found by
 * its own primary-key lookup whatever the planner knows. Measured among 1,000 users
 * (bench/micro/pg-message-cpu.ts and one call per transaction on one connection):
 * - PL/pgSQL kept choosing custom plans for its two statements (an array parameter looks
 *   cheaper planned for its value), so both were planned anew on every call: forcing the
 *   generic plan took a call from ~313 to ~170 µs of the backend's CPU.
 * - The joins of 0014 left the lookup to statistics, and a users table never analyzed
 *   (autovacuum off, or not run yet) looked small enough for a hash join over a sequential
 *   scan of every user, twice per message, growing with the users. A locking clause or a
 *   LIMIT keeps a LATERAL subquery from being folded into a join, so it runs once per wanted
 *   id, through users_pkey. The locks are still taken in id order: the subquery runs for each
 *   id in the order of the sorted ids it is joined to.
 */
export const feedHeadsByIndexMigration: HeraldMigration = ({ dialect }) => ({
  async up(db: Kysely<any>) {
    if (dialect !== 'postgres') return;
    await sql`
      CREATE OR REPLACE FUNCTION herald_feed_heads(wanted varchar[])
      RETURNS TABLE (id varchar, key bigint, seq bigint, badge integer)
      LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
      #variable_conflict use_column
      BEGIN
        PERFORM 1 FROM (SELECT w.id FROM unnest(wanted) AS w(id) ORDER BY w.id) AS w
          CROSS JOIN LATERAL (SELECT 1 FROM users AS u WHERE u.id = w.id FOR NO KEY UPDATE) AS locked;
        RETURN QUERY
          SELECT u.id::varchar, u.key::bigint, coalesce(head.seq, 0)::bigint, coalesce(head.badge, 0)::integer
          FROM unnest(wanted) AS w(id)
          CROSS JOIN LATERAL (SELECT users.id, users.key FROM users WHERE users.id = w.id LIMIT 1) AS u
          LEFT JOIN LATERAL (
            SELECT n.seq, n.badge FROM notifications AS n WHERE n.user_key = u.key ORDER BY n.seq DESC LIMIT 1
          ) AS head ON true;
      END
      $$`.execute(db);
  },
});

/**
 * PostgreSQL: herald_feed_heads finds each user once. The locking pass keeps the keys of the
 * rows it locked, and the heads are read by those keys: 0015 looked every user up again
 * through users_pkey to learn the key it had just locked, a third of the function's index
 * reads (with 2,001 users: ~8,000 buffer hits to lock, ~6,000 to find the users again, ~6,000
 * to read the heads). A user's key never changes, so the locked row's key is the one to use.
 */
export const feedHeadsOnceMigration: HeraldMigration = ({ dialect }) => ({
  async up(db: Kysely<any>) {
    if (dialect !== 'postgres') return;
    await sql`
      CREATE OR REPLACE FUNCTION herald_feed_heads(wanted varchar[])
      RETURNS TABLE (id varchar, key bigint, seq bigint, badge integer)
      LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
      #variable_conflict use_column
      DECLARE
        locked_ids varchar[];
        locked_keys bigint[];
      BEGIN
        SELECT array_agg(locked.id), array_agg(locked.key) INTO locked_ids, locked_keys
          FROM (SELECT w.id FROM unnest(wanted) AS w(id) ORDER BY w.id) AS w
          CROSS JOIN LATERAL (SELECT u.id, u.key FROM users AS u WHERE u.id = w.id FOR NO KEY UPDATE) AS locked;
        RETURN QUERY
          SELECT k.id::varchar, k.key::bigint, coalesce(head.seq, 0)::bigint, coalesce(head.badge, 0)::integer
          FROM unnest(locked_ids, locked_keys) AS k(id, key)
          LEFT JOIN LATERAL (
            SELECT n.seq, n.badge FROM notifications AS n WHERE n.user_key = k.key ORDER BY n.seq DESC LIMIT 1
          ) AS head ON true;
      END
      $$`.execute(db);
  },
});
