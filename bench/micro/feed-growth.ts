/**
 * Micro-benchmark (not part of `npm run bench`): how the SQLite cost of a feed row changes
 * as the feeds grow, per layout. One group of USERS recipients gets ROUNDS × PER_ROUND
 * messages, PER_COMMIT to a transaction (what group commit gives under the fan-out load);
 * each round's CPU µs per row (commit included) and pages written to the log per commit are
 * printed, like the 8 runs of `BENCH_RUNS=8 BENCH_ONLY=fanout`.
 * Usage: node --import tsx bench/micro/feed-growth.ts   (LAYOUTS=a,b to pick some)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';

const USERS = Number(process.env.USERS ?? 2000);
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const PER_ROUND = Number(process.env.PER_ROUND ?? 50);
const PER_COMMIT = Number(process.env.PER_COMMIT ?? 4);
/** Rows the small table of the two-level layout holds before they move to the large one. */
const RECENT_ROWS = Number(process.env.RECENT_ROWS ?? 40_000);
/** Rows of one epoch of the epoch-clustered layout. */
const EPOCH_ROWS = Number(process.env.EPOCH_ROWS ?? 40_000);

const COLUMNS = `type varchar(64) NOT NULL, conversation_id varchar(200), sender_id varchar(200),
  title varchar(400) NOT NULL, body text NOT NULL, badge integer NOT NULL, silent integer NOT NULL,
  data text NOT NULL, status varchar(16), status_at integer, created_at integer NOT NULL, push_options text`;
const NAMES = 'type, conversation_id, sender_id, title, body, badge, silent, data, status, status_at, created_at, push_options';

interface Layout {
  ddl: string[];
  /** Statements run after each commit's rows, in the same transaction (a move, for instance). */
  after?: (db: SQLite.Database, rowsSoFar: number) => void;
  insert: string;
  /** The insert takes the epoch (EPOCH_ROWS rows each) first. */
  epoch?: boolean;
  /** Told (user key, first seq, epoch) when a user's rows enter an epoch. */
  mark?: string;
  /** A user's rows after a seq (@user the user key, @since the seq), oldest first, at most 50. */
  read: string;
}

const layouts: Record<string, Layout> = {
  // Herald today (migrations 0008 and 0010): rows in commit order, one index by user.
  current: {
    ddl: [`CREATE TABLE notifications (user_key integer NOT NULL, seq integer NOT NULL, ${COLUMNS}, UNIQUE (user_key, seq))`],
    insert: `INSERT INTO notifications (user_key, seq, ${NAMES}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    read: 'SELECT * FROM notifications WHERE user_key = @user AND seq > @since ORDER BY seq LIMIT 50',
  },
  // Rows in commit order (never moved); the index by user as a table of its own, in two
  // levels: entries go to a small one, and every RECENT_ROWS rows move, in key order, to the
  // large one, so each user's page of the large one is written once per move, not per commit.
  'two-level index': {
    ddl: [
      `CREATE TABLE notifications (id INTEGER PRIMARY KEY, user_key integer NOT NULL, seq integer NOT NULL, ${COLUMNS})`,
      'CREATE TABLE feed_recent (user_key integer NOT NULL, seq integer NOT NULL, id integer NOT NULL, PRIMARY KEY (user_key, seq)) WITHOUT ROWID',
      'CREATE TABLE feed_index (user_key integer NOT NULL, seq integer NOT NULL, id integer NOT NULL, PRIMARY KEY (user_key, seq)) WITHOUT ROWID',
      `CREATE TRIGGER feed_entry AFTER INSERT ON notifications BEGIN
         INSERT INTO feed_recent (user_key, seq, id) VALUES (new.user_key, new.seq, new.id); END`,
    ],
    insert: `INSERT INTO notifications (user_key, seq, ${NAMES}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    after(db, rows) {
      if (rows % RECENT_ROWS >= USERS * PER_COMMIT) return;
      db.exec('INSERT INTO feed_index SELECT * FROM feed_recent');
      db.exec('DELETE FROM feed_recent');
    },
    read: `SELECT n.* FROM (SELECT id, seq FROM feed_index WHERE user_key = @user AND seq > @since
             UNION ALL SELECT id, seq FROM feed_recent WHERE user_key = @user AND seq > @since ORDER BY seq LIMIT 50) AS f
           JOIN notifications AS n ON n.id = f.id ORDER BY f.seq`,
  },
  // Rows in commit order; the index by user clustered by epoch (EPOCH_ROWS rows each), so a
  // commit's recipients sit side by side in the current epoch's pages; which epochs hold a
  // user's rows is a table written once per user and epoch.
  epochs: {
    ddl: [
      `CREATE TABLE notifications (id INTEGER PRIMARY KEY, epoch integer NOT NULL, user_key integer NOT NULL, seq integer NOT NULL, ${COLUMNS})`,
      'CREATE UNIQUE INDEX notifications_epoch ON notifications (epoch, user_key, seq)',
      `CREATE TABLE feed_epochs (user_key integer NOT NULL, first_seq integer NOT NULL, epoch integer NOT NULL,
         PRIMARY KEY (user_key, first_seq)) WITHOUT ROWID`,
    ],
    insert: `INSERT INTO notifications (epoch, user_key, seq, ${NAMES}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
    epoch: true,
    mark: 'INSERT INTO feed_epochs (user_key, first_seq, epoch) VALUES (?, ?, ?)',
    // The epochs from the one holding @since + 1 on; each is one seek of the (epoch, user, seq) index.
    read: `SELECT * FROM notifications WHERE user_key = @user AND seq > @since AND epoch IN (
             SELECT epoch FROM feed_epochs WHERE user_key = @user AND first_seq >=
               coalesce((SELECT max(first_seq) FROM feed_epochs WHERE user_key = @user AND first_seq <= @since + 1), 0))
           ORDER BY seq LIMIT 50`,
  },
};

const chosen = process.env.LAYOUTS?.split(',') ?? Object.keys(layouts);

function run(name: string, layout: Layout): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-feed-growth-'));
  const db = new SQLite(path.join(dir, 'feed.db'));
  if (process.env.PAGE_SIZE) db.pragma(`page_size = ${Number(process.env.PAGE_SIZE)}`);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('cache_size = -65536');
  db.pragma('wal_autocheckpoint = 0');
  for (const statement of layout.ddl) db.exec(statement);
  const insert = db.prepare(layout.insert);
  const mark = layout.mark ? db.prepare(layout.mark) : undefined;
  const seqs = new Array<number>(USERS).fill(0);
  const epochs = new Array<number>(USERS).fill(-1);
  let rows = 0;
  const walPages = () =>
    (fs.statSync(path.join(dir, 'feed.db-wal'), { throwIfNoEntry: false })?.size ?? 0) /
    (24 + (db.pragma('page_size', { simple: true }) as number));
  const line: string[] = [];
  const pagesLine: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const started = process.cpuUsage();
    let commits = 0;
    for (let done = 0; done < PER_ROUND; done += PER_COMMIT) {
      db.transaction(() => {
        const now = Date.now();
        for (let m = 0; m < PER_COMMIT; m++) {
          for (let user = 1; user <= USERS; user++) {
            const seq = ++seqs[user - 1];
            const epoch = Math.floor(rows / EPOCH_ROWS);
            if (mark && epochs[user - 1] !== epoch) {
              mark.run(user, seq, epoch);
              epochs[user - 1] = epoch;
            }
            const key = layout.epoch ? [epoch, user] : [user];
            insert.run(
              ...key,
              seq,
              'message',
              '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
              '5d41402abc4b2a76b9719d911017c592',
              `${seq} messages from Bench 0 in Bench group`,
              '',
              seq,
              0,
              `{"messageid":"m-${m}","unread":${seq}}`,
              null,
              null,
              now,
              null,
            );
          }
          rows += USERS;
        }
        layout.after?.(db, rows);
      })();
      commits++;
    }
    const cpu = process.cpuUsage(started);
    const us = (cpu.user + cpu.system) / (PER_ROUND * USERS);
    line.push(us.toFixed(2));
    pagesLine.push(String(Math.round(walPages() / commits)));
  }
  // Reads: every user's 50 rows after a point half-way through its feed.
  const read = db.prepare(layout.read);
  const readStarted = process.cpuUsage();
  for (let user = 1; user <= USERS; user++) {
    const got = read.all({ user, since: Math.floor(seqs[user - 1] / 2) }) as Array<{ seq: number }>;
    if (got.length !== 50 || got[0].seq !== Math.floor(seqs[user - 1] / 2) + 1 || got[49].seq !== got[0].seq + 49)
      throw new Error(`${name}: read ${got.length} rows of user ${user}, from ${got[0]?.seq}`);
  }
  const readCpu = process.cpuUsage(readStarted);
  const readUs = (readCpu.user + readCpu.system) / USERS;
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(
    `${name}: CPU µs per row, round 1–${ROUNDS}: ${line.join(' ')}  (round ${ROUNDS} / round 1: ${(Number(line.at(-1)) / Number(line[0])).toFixed(2)}×)`,
  );
  console.log(`${' '.repeat(name.length)}  log pages per commit:       ${pagesLine.join(' ')}`);
  console.log(`${' '.repeat(name.length)}  a read of 50 rows from mid-feed: ${readUs.toFixed(1)} µs CPU`);
}

for (const name of chosen) run(name, layouts[name]);
