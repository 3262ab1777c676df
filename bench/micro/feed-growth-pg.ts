/**
 * Micro-benchmark (not part of `npm run bench`): feed-growth.ts on PostgreSQL. One group of
 * USERS recipients gets ROUNDS × PER_ROUND messages, PER_COMMIT to a transaction, each
 * message's rows in one unnest INSERT as Herald writes them; per round, the CPU time of the
 * PostgreSQL backend doing it (from /proc, so PostgreSQL must run on this machine) per row
 * and the WAL bytes per row, for the feed indexed by (user_key, seq), by (epoch, user_key, seq)
 * with the epoch counted here, and by (epoch, user_key, seq) with the epoch from a shared clock
 * read in the statement and the feed_epochs entries it adds, as Herald writes since migration
 * 0018 (src/store/bulk.ts). A schema of its own in BENCH_DATABASE_URL, dropped afterwards.
 * Usage: node --import tsx bench/micro/feed-growth-pg.ts
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const USERS = Number(process.env.USERS ?? 2000);
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const PER_ROUND = Number(process.env.PER_ROUND ?? 50);
const PER_COMMIT = Number(process.env.PER_COMMIT ?? 4);
const EPOCH_ROWS = Number(process.env.EPOCH_ROWS ?? 65_536);

const COLUMNS = `epoch bigint NOT NULL, user_key bigint NOT NULL, seq bigint NOT NULL, type varchar(64) NOT NULL,
  title varchar(400) NOT NULL, badge integer NOT NULL, data text NOT NULL, created_at bigint NOT NULL`;
const ROWS = `k, s, 'message', 'n messages from Bench 0 in Bench group', s::integer,
  '{"messageid":"m","unread":' || s || '}', $4::bigint FROM unnest($2::bigint[], $3::bigint[]) AS t(k, s)`;
/** $1 the epoch, $2 user keys, $3 seqs, $4 now. */
const COUNTED = `INSERT INTO notifications SELECT $1::bigint, ${ROWS}`;
/**
 * As bulk.ts: the epoch from the clock, and an entry per user whose head ($1, one per row) was
 * in another epoch; answers with the epoch it wrote to.
 */
const CLOCKED = `WITH clock AS MATERIALIZED (
    SELECT max(nextval('feed_clock')) / ${EPOCH_ROWS} AS epoch FROM generate_series(1, cardinality($2::bigint[]))
  ), marked AS (
    INSERT INTO feed_epochs (user_key, first_seq, epoch)
    SELECT m.k, min(m.s), (SELECT epoch FROM clock) FROM unnest($2::bigint[], $3::bigint[], $1::bigint[]) AS m(k, s, e)
    WHERE m.e IS DISTINCT FROM (SELECT epoch FROM clock) GROUP BY m.k
    ON CONFLICT (user_key, first_seq) DO UPDATE SET epoch = EXCLUDED.epoch
  ), feed AS (INSERT INTO notifications SELECT (SELECT epoch FROM clock), ${ROWS})
  SELECT epoch FROM clock`;
const layouts: Record<string, { ddl: string[]; insert: string }> = {
  'user_key, seq (Herald before 0018)': {
    ddl: [`CREATE TABLE notifications (${COLUMNS}, UNIQUE (user_key, seq))`],
    insert: COUNTED,
  },
  'epoch, user_key, seq (epoch counted here)': {
    ddl: [`CREATE TABLE notifications (${COLUMNS}, UNIQUE (epoch, user_key, seq))`],
    insert: COUNTED,
  },
  'epoch, user_key, seq (shared clock, Herald)': {
    ddl: [
      `CREATE TABLE notifications (${COLUMNS}, UNIQUE (epoch, user_key, seq))`,
      `CREATE TABLE feed_epochs (user_key bigint NOT NULL, first_seq bigint NOT NULL, epoch bigint NOT NULL, PRIMARY KEY (user_key, first_seq))`,
      `CREATE SEQUENCE feed_clock AS bigint MINVALUE 0 START WITH ${EPOCH_ROWS} CACHE 1`,
    ],
    insert: CLOCKED,
  },
};

/** User + system CPU of a process, in microseconds (clock ticks of 10 ms). */
function cpuOf(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function run(name: string, { ddl, insert }: { ddl: string[]; insert: string }): Promise<void> {
  const schema = `feed_growth_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: URL });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(`SET search_path = ${schema}`);
    for (const statement of ddl) await client.query(statement);
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const seqs = new Array<number>(USERS).fill(0);
    const keys = Array.from({ length: USERS }, (_, i) => i + 1);
    /** The epoch of each user's newest row, as herald_feed_heads would say. */
    let heads = keys.map(() => -1);
    let rows = 0;
    const cpu: string[] = [];
    const wal: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await client.query('CHECKPOINT').catch(() => undefined);
      const lsnBefore = (await client.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l;
      const before = cpuOf(pid);
      for (let done = 0; done < PER_ROUND; done += PER_COMMIT) {
        await client.query('BEGIN');
        for (let m = 0; m < PER_COMMIT; m++) {
          const epoch = Math.floor(rows / EPOCH_ROWS);
          const seq = keys.map((k) => ++seqs[k - 1]);
          const result = await client.query<{ epoch: string }>(insert, [insert === CLOCKED ? heads : epoch, keys, seq, Date.now()]);
          if (insert === CLOCKED) heads = keys.map(() => Number(result.rows[0].epoch));
          rows += USERS;
        }
        await client.query('COMMIT');
      }
      const used = cpuOf(pid) - before;
      const walBytes = (
        await client.query<{ b: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text AS b', [lsnBefore])
      ).rows[0].b;
      cpu.push((used / (PER_ROUND * USERS)).toFixed(2));
      wal.push((Number(walBytes) / (PER_ROUND * USERS)).toFixed(0));
    }
    console.log(`${name}: backend CPU µs per row, round 1–${ROUNDS}: ${cpu.join(' ')}`);
    console.log(`${' '.repeat(name.length)}  WAL bytes per row:                ${wal.join(' ')}`);
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await client.end();
  }
}

for (const [name, layout] of Object.entries(layouts)) await run(name, layout);
