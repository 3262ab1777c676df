import { sql, type Kysely } from 'kysely';
import type { HeraldMigration } from './migration.ts';

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
      // PostgreSQL keeps its (user_key, seq) index for now, every row in epoch 0 and each user
      // with the one entry (1, 0), made with the user: the readers' epoch condition holds as
      // is. Its server's CPU per row still grows with the feeds (bench/micro/feed-growth-pg.ts);
      // epochs there wait for a clock the nodes share.
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
