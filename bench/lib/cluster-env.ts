/**
 * The PostgreSQL and Redis the cluster scenarios use, as this machine runs them.
 *
 *   BENCH_DATABASE_URL  the bench's own database (default postgres://postgres@127.0.0.1:5432/herald_bench,
 *                       created when missing); every cluster gets a fresh schema in it, dropped after
 *   BENCH_REDIS_URL     Redis for the multi-node bus (default redis://127.0.0.1:6379/11: a db number of
 *                       the bench's own for the keys Herald writes)
 *
 * Redis pub/sub channels ignore the db number: nodes of other Herald instances on the same
 * Redis (tests running beside the bench) see the bench's notifications and the reverse.
 * Herald has no channel prefix yet; their user ids never meet, so this costs CPU, not correctness.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const BENCH_DATABASE_URL = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/herald_bench';
export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379/11';

/** Why PostgreSQL cannot be used, or undefined when it can (the database is created if missing). */
export async function postgresMissing(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: BENCH_DATABASE_URL, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    return undefined;
  } catch (error) {
    if ((error as { code?: string }).code !== '3D000') return `PostgreSQL at ${address(BENCH_DATABASE_URL)}: ${(error as Error).message}`;
  } finally {
    await client.end().catch(() => {});
  }
  // 3D000: the database does not exist yet; make it from the server's maintenance database.
  const url = new URL(BENCH_DATABASE_URL);
  const name = url.pathname.slice(1);
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) return `BENCH_DATABASE_URL: cannot create a database named "${name}"`;
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    return undefined;
  } catch (error) {
    // Another bench may have created it in between.
    if ((error as { code?: string }).code === '42P04') return undefined;
    return `cannot create the database ${name}: ${(error as Error).message}`;
  } finally {
    await admin.end().catch(() => {});
  }
}

/** Why Redis cannot be reached, or undefined (a PING over a plain socket). */
export function redisMissing(): Promise<string | undefined> {
  const url = new URL(BENCH_REDIS_URL);
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port || 6379), url.hostname);
    const done = (why: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`Redis at ${url.host} did not answer within 5 s`), 5000);
    socket.once('error', (error) => done(`Redis at ${url.host}: ${error.message}`));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) =>
      done(data.toString().startsWith('+PONG') ? undefined : `Redis at ${url.host}: ${data.toString().trim()}`),
    );
  });
}

/** A fresh schema in the bench database, and the HERALD_DATABASE_URL that puts a node in it. */
export async function freshSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `bench_${randomBytes(5).toString('hex')}`;
  await query(`CREATE SCHEMA ${schema}`);
  const url = new URL(BENCH_DATABASE_URL);
  // libpq's options parameter (pg passes it through): every connection of the pool uses the schema.
  url.searchParams.set('options', `-c search_path=${schema}`);
  return { url: url.toString(), drop: () => query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`) };
}

async function query(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: BENCH_DATABASE_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

function address(url: string): string {
  const u = new URL(url);
  return `${u.host}${u.pathname}`;
}
