import { sql, type Kysely } from 'kysely';
import type { HeraldMigration } from './migration.ts';
import { EPOCH_ROWS } from './bulk.ts';

/**
 * The feed's index by epoch first, (epoch, user_key, seq), so the recipients of one commit
 * sit side by side in the current epoch's pages; by (user_key, seq) each recipient of a
 * message dirtied a page of their own once their feed filled one (BENCHMARKS.md, "Fan-out as
 * feeds grow"). feed_epochs says where each user's rows are: the rows from `first_seq` up to
 * the next entry's are in `epoch`. Rows written before this migration are in epoch 0.
 */
export const feedEpochsMigration: HeraldMigration = ({ dialect }) => ({
  async up(db: Kysely<any>) {
    if (dialect === 'postgres') {
      // PostgreSQL: every row in epoch 0 and each user with the one entry (1, 0), made with
      // the user, so the readers' epoch condition holds as is; 0018 (below) moves the index
      // and gives the nodes a shared epoch clock.
      await sql`ALTER TABLE notifications ADD COLUMN epoch bigint NOT NULL DEFAULT 0`.execute(db);
      await sql`CREATE TABLE feed_epochs (user_key bigint NOT NULL, first_seq bigint NOT NULL, epoch bigint NOT NULL,
                  PRIMARY KEY (user_key, first_seq))`.execute(db);
      await sql`INSERT INTO feed_epochs SELECT key, 1, 0 FROM users`.execute(db);
      await sql`CREATE FUNCTION herald_feed_epoch_given() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO feed_epochs (user_key, first_seq, epoch) VALUES (NEW.key, 1, 0); RETURN NULL; END $$`.execute(db);
      await sql`CREATE TRIGGER users_feed_epoch AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION herald_feed_epoch_given()`.execute(db);
      return;
    }
    await sql`CREATE TABLE notifications_by_epoch (
                epoch integer NOT NULL, user_key integer NOT NULL, seq integer NOT NULL, type varchar(64) NOT NULL,
                conversation_id varchar(200), sender_id varchar(200), title varchar(400) NOT NULL,
                body text NOT NULL, badge integer NOT NULL, silent integer NOT NULL, data text NOT NULL,
                status varchar(16), status_at integer, created_at integer NOT NULL, push_options text,
                CONSTRAINT notifications_epoch_user_seq UNIQUE (epoch, user_key, seq))`.execute(db);
    await sql`INSERT INTO notifications_by_epoch
              SELECT 0, user_key, seq, type, conversation_id, sender_id, title, body, badge, silent, data,
                     status, status_at, created_at, push_options
              FROM notifications ORDER BY rowid`.execute(db);
    await sql`DROP TABLE notifications`.execute(db);
    await sql`ALTER TABLE notifications_by_epoch RENAME TO notifications`.execute(db);
    await sql`CREATE TABLE feed_epochs (user_key integer NOT NULL, first_seq integer NOT NULL, epoch integer NOT NULL,
                PRIMARY KEY (user_key, first_seq)) WITHOUT ROWID`.execute(db);
    await sql`INSERT INTO feed_epochs SELECT user_key, min(seq), 0 FROM notifications GROUP BY user_key`.execute(db);
  },
});

/**
 * PostgreSQL: the feed's index by (epoch, user_key, seq), as on SQLite, with a clock every
 * node shares: the sequence herald_feed_clock counts feed rows (each statement that writes
 * rows draws one value per row), and a statement's rows all go to the epoch of the last value
 * it drew, divided by EPOCH_ROWS. The clock is read in the statement that inserts the rows,
 * after their users' rows were locked (herald_feed_heads), and a sequence never hands out a
 * smaller value later (CACHE 1: no node holds values back), so a user's rows never go to an
 * earlier epoch than the rows before them. The statement also adds the feed_epochs entry of
 * each user whose rows enter another epoch. The rows written before this migration stay in
 * epoch 0, which the entries made by 0016 record; the clock starts at epoch 1.
 *
 * The epoch column loses its default: a node from before this migration would write its rows
 * to epoch 0, where no reader looks for them once a user's rows have moved on, so its inserts
 * fail instead. herald_feed_heads also returns the epoch of each user's newest row and reads
 * that row through the new index.
 */
export const feedEpochClockMigration: HeraldMigration = ({ dialect }) => ({
  async up(db: Kysely<any>) {
    if (dialect !== 'postgres') return;
    await sql`CREATE SEQUENCE herald_feed_clock AS bigint MINVALUE 0 START WITH ${sql.lit(EPOCH_ROWS)} CACHE 1`.execute(db);
    await sql`ALTER TABLE notifications ALTER COLUMN epoch DROP DEFAULT`.execute(db);
    await sql`ALTER TABLE notifications ADD CONSTRAINT notifications_epoch_user_seq UNIQUE (epoch, user_key, seq)`.execute(db);
    await sql`ALTER TABLE notifications DROP CONSTRAINT notifications_user_seq`.execute(db);
    await sql`DROP FUNCTION herald_feed_heads(varchar[])`.execute(db);
    await sql`
      CREATE FUNCTION herald_feed_heads(wanted varchar[])
      RETURNS TABLE (id varchar, key bigint, seq bigint, badge integer, epoch bigint)
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
          SELECT k.id::varchar, k.key::bigint, coalesce(head.seq, 0)::bigint, coalesce(head.badge, 0)::integer,
            coalesce(fe.epoch, -1)::bigint
          FROM unnest(locked_ids, locked_keys) AS k(id, key)
          LEFT JOIN LATERAL (
            SELECT f.epoch FROM feed_epochs AS f WHERE f.user_key = k.key ORDER BY f.first_seq DESC LIMIT 1
          ) AS fe ON true
          LEFT JOIN LATERAL (
            SELECT n.seq, n.badge FROM notifications AS n WHERE n.epoch = fe.epoch AND n.user_key = k.key ORDER BY n.seq DESC LIMIT 1
          ) AS head ON true;
      END
      $$`.execute(db);
  },
});
