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
