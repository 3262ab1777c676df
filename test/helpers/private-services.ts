import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { tracked } from './children.ts';

/*
 * A redis-server and a PostgreSQL cluster of a test's own, on free ports in a temporary
 * directory, so a test may stop and restart them without disturbing anyone else's. Every
 * process started here is killed by destroy() or killPrivateServices(), and, should the test
 * not get to either, when the test process exits.
 */

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Kills every process started here that still runs, and waits for them to exit. */
export async function killPrivateServices(): Promise<void> {
  await Promise.all([...running].map((child) => endProcess(child, 'SIGKILL')));
}

/** A port nothing listens on just now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Starts a process and resolves once `ready` matches its output; kills it on a timeout or early exit. */
function startProcess(
  command: string,
  args: string[],
  ready: RegExp,
  timeoutMs: number,
  options: { cwd?: string } = {},
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = tracked(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: options.cwd }));
    running.add(child);
    child.once('exit', () => running.delete(child));
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(command)} did not start in ${timeoutMs} ms: ${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (!ready.test(output)) return;
      clearTimeout(timer);
      resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(command)} exited (${code ?? signal}) before it was ready: ${output}`));
    });
  });
}

/** Ends a process (SIGTERM, then SIGKILL after `graceMs`) and waits for it to exit. */
async function endProcess(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface PrivateService {
  url: string;
  port: number;
  /** Stops it (the data directory stays) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops it for good and removes its directory. */
  destroy(): Promise<void>;
}

/** A redis-server without persistence, on a free port. */
export async function startPrivateRedis(): Promise<PrivateService> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = await startProcess(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      /Ready to accept connections/,
      15_000,
    );
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop: () => endProcess(child, 'SIGKILL'),
    destroy: () => endProcess(child, 'SIGKILL'),
  };
}

/** The directory of PostgreSQL's server programs on this machine (the newest version), or undefined. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const versions = fs
    .readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? path.join(root, versions[0], 'bin') : undefined;
}

/** The postgres user's ids when this process is root (initdb refuses to run as root). */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root and there is no postgres user to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs a PostgreSQL program as the postgres user when this process is root (setpriv execs it: the pid is its own). */
function asPostgres(program: string, args: string[], user: { uid: number; gid: number } | undefined): [string, string[]] {
  if (!user) return [program, args];
  return ['setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', program, ...args]];
}

/**
 * A PostgreSQL cluster of its own in a temporary directory: trust authentication for the
 * user `postgres` over 127.0.0.1, fsync off, a database `herald`.
 */
export async function startPrivatePostgres(): Promise<PrivateService> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('no PostgreSQL server programs under /usr/lib/postgresql');
  const user = postgresUser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-pg-'));
  const data = path.join(dir, 'data');
  if (user) fs.chownSync(dir, user.uid, user.gid);
  const [initdb, initArgs] = asPostgres(
    path.join(bin, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8'],
    user,
  );
  const init = tracked(spawn(initdb, initArgs, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir }));
  running.add(init);
  let initOutput = '';
  init.stdout!.on('data', (c) => (initOutput += c));
  init.stderr!.on('data', (c) => (initOutput += c));
  const initTimer = setTimeout(() => init.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => init.once('exit', (c) => resolve(c)));
  clearTimeout(initTimer);
  running.delete(init);
  if (code !== 0) throw new Error(`initdb failed (${code}): ${initOutput}`);

  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    const [postgres, args] = asPostgres(
      path.join(bin, 'postgres'),
      ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=100'],
      user,
    );
    child = await startProcess(postgres, args, /database system is ready to accept connections/, 30_000, { cwd: dir });
  };
  await start();
  // The database the nodes use: made over a plain connection, as an operator would.
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
  await client.connect();
  await client.query('CREATE DATABASE herald');
  await client.end();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/herald`,
    port,
    start,
    // SIGINT: PostgreSQL's fast shutdown (open sessions are ended, as in a restart by an operator).
    stop: () => endProcess(child, 'SIGINT'),
    async destroy() {
      await endProcess(child, 'SIGINT', 5000);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
