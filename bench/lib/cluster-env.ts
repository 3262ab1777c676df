/**
 * The PostgreSQL and Redis the cluster scenarios use, as this machine runs them.
 *
 *   BENCH_DATABASE_URL  the bench's own database (default postgres://postgres@127.0.0.1:5432/herald_bench,
 *                       created when missing); every cluster gets a fresh schema in it, dropped after
 *   BENCH_REDIS_URL     Redis for the multi-node bus; by default the bench starts a Redis server of
 *                       its own (this machine's redis-server, loopback, an ephemeral port, nothing
 *                       saved), stopped with the other children
 *
 * Why not the machine's Redis on 6379 with a db number of the bench's own: pub/sub channels
 * ignore the db number, and Herald has no channel prefix. Nodes of other Herald trees on the
 * same Redis (tests and other branches running beside the bench) publish on the same
 * `herald:notifications`; one whose bus format had changed killed both bench nodes mid-run
 * ("TypeError: notifications is not iterable" in Hub.dispatch).
 */
import net from 'node:net';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { adopt } from './ipc.ts';

export const BENCH_DATABASE_URL = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/herald_bench';
let redisUrl: Promise<string> | undefined = process.env.BENCH_REDIS_URL ? Promise.resolve(process.env.BENCH_REDIS_URL) : undefined;

/** The Redis the cluster nodes share: BENCH_REDIS_URL, or a server of the bench's own, started once. */
export function benchRedisUrl(): Promise<string> {
  redisUrl ??= startOwnRedis();
  return redisUrl;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startOwnRedis(): Promise<string> {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  adopt(server);
  const failed = new Promise<never>((_, reject) => {
    server.once('error', (error) => reject(new Error(`redis-server: ${error.message}`)));
    server.once('exit', (code) => reject(new Error(`redis-server exited (code ${code}) while starting`)));
  });
  failed.catch(() => {});
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  while ((await Promise.race([redisPing(url), failed])) !== undefined) {
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return url;
}

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

/** Why the cluster's Redis cannot be had, or undefined. */
export async function redisMissing(): Promise<string | undefined> {
  try {
    return await redisPing(await benchRedisUrl());
  } catch (error) {
    return (error as Error).message;
  }
}

/** Why Redis at `address` does not answer, or undefined (a PING over a plain socket). */
function redisPing(address: string): Promise<string | undefined> {
  const url = new URL(address);
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
export async function freshSchema(): Promise<{ url: string; schema: string; drop(): Promise<void> }> {
  const schema = `bench_${randomBytes(5).toString('hex')}`;
  await query(`CREATE SCHEMA ${schema}`);
  const url = new URL(BENCH_DATABASE_URL);
  // libpq's options parameter (pg passes it through): every connection of the pool uses the schema.
  url.searchParams.set('options', `-c search_path=${schema}`);
  // Named after the schema, so the backends of these nodes can be told from others (pg-cpu.ts).
  url.searchParams.set('application_name', schema);
  return { url: url.toString(), schema, drop: () => query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`) };
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
