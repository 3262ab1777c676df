/**
 * Micro-benchmark (not part of `npm run bench`): the CPU time one one-to-one message costs on
 * PostgreSQL, in this process and in the database's backends, through the real `addMessage`
 * path with a given number of messages in flight; SQLite beside it for the ratio.
 * Usage: DATABASE_URL=postgres://… node --import tsx bench/micro/pg-message-cpu.ts
 *   MESSAGES=n (4000), IN_FLIGHT=n (8), PAIRS=n (500)
 */
import { sql } from 'kysely';
import { openStore, type Store } from '../../src/store/db.ts';
import { SecretBox } from '../../src/store/secrets.ts';
import { LocalBus } from '../../src/cluster/bus.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { createBenchDatabase } from '../lib/database.ts';
import { oneToOnePairs } from '../lib/pairs.ts';
import { backendsCpu as backendsCpuOf } from '../lib/pg-cpu.ts';

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('DATABASE_URL=postgres://… is needed');
const MESSAGES = Number(process.env.MESSAGES ?? 4000);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 8);
const PAIRS = Number(process.env.PAIRS ?? 500);

/** CPU time (µs) of this database's backends so far; none for SQLite. */
async function backendsCpu(store: Store): Promise<number> {
  return store.dialect === 'postgres' ? backendsCpuOf(store.db) : 0;
}

async function measure(store: Store, label: string): Promise<number> {
  const notifier = new Notifier(store, new LocalBus());
  const send = await oneToOnePairs(store, notifier, PAIRS, 'cpu.example');
  for (let k = 0; k < 500; k++) await send(-1 - k); // warm-up
  const cpu0 = process.cpuUsage();
  const db0 = await backendsCpu(store);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < MESSAGES) await send(next++);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const own = (cpu.user + cpu.system) / MESSAGES;
  const database = ((await backendsCpu(store)) - db0) / MESSAGES;
  console.log(
    `${label}: ${Math.round(MESSAGES / seconds)} messages/s, CPU per message ${Math.round(own)} µs here + ${Math.round(database)} µs in PostgreSQL`,
  );
  await notifier.close();
  return own + database;
}

const sqliteStore = await openStore({ sqliteFile: ':memory:' });
const sqlite = await measure(sqliteStore, 'SQLite (in memory)');
await sqliteStore.close();
const database = await createBenchDatabase(databaseUrl);
try {
  // DIAGNOSE=sql…: a statement run on the fresh database first (ALTER DATABASE … SET …), to see what a setting costs.
  if (process.env.DIAGNOSE) {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query(process.env.DIAGNOSE.replaceAll('$db', new URL(database.url).pathname.slice(1)));
    await client.end();
  }
  const pgStore = await openStore({ databaseUrl: database.url, secrets: SecretBox.ephemeral() });
  const postgres = await measure(pgStore, 'PostgreSQL');
  if (process.env.DIAGNOSE) {
    const scans = await sql<{ relname: string; seq_scan: number; idx_scan: number; n_tup_upd: number; n_tup_hot_upd: number }>`
      SELECT relname, seq_scan, idx_scan, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables ORDER BY seq_scan DESC LIMIT 8`.execute(
      pgStore.db,
    );
    console.table(scans.rows);
    const functions = await sql`SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions`.execute(pgStore.db);
    console.table(functions.rows);
  }
  await pgStore.close();
  console.log(`PostgreSQL / SQLite, CPU per message (both sides): ${(postgres / sqlite).toFixed(2)}×`);
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await database.drop();
}
