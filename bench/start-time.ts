/**
 * How long Herald takes to start, as a user starts it:
 *   - `npm start` until /healthz answers 200 (the prestart build check included), on a
 *     fresh data dir (first start: TLS pair, VAPID keys, migrations) and again on the same one;
 *   - `node bin/herald.js serve` until /healthz answers, without npm;
 *   - `herald --help` until it exits.
 * Medians of RUNS runs each (default 5). Targets (DESIGN.md): npm start → /healthz under
 * 1.5 s, --help under 0.5 s.
 *
 *   node --import tsx bench/start-time.ts [--root DIR] [--runs N]
 *
 * --root measures another checkout (e.g. the tree before a change) with the same script.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { root: { type: 'string' }, runs: { type: 'string', default: '5' } } });
const ROOT = path.resolve(values.root ?? path.join(import.meta.dirname, '..'));
const RUNS = Number(values.runs);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function healthy(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).status === 200;
  } catch {
    return false;
  }
}

/** Milliseconds from spawning `command` until its /healthz answers; then stops its process group. */
async function untilHealthy(command: string, args: string[], dataDir: string): Promise<number> {
  const [httpPort, httpsPort, udpPort] = [await freePort(), await freePort(), await freePort()];
  const started = performance.now();
  const child = spawn(command, args, {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env,
      HERALD_DATA_DIR: dataDir,
      HERALD_HOST: '127.0.0.1',
      HERALD_HTTP_PORT: String(httpPort),
      HERALD_HTTPS_PORT: String(httpsPort),
      HERALD_UDP_PORT: String(udpPort),
      HERALD_ADMIN_TOKEN: 'start-time-admin-token',
      HERALD_LOG_LEVEL: 'warn',
    },
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    // A bench may poll: it measures, it does not synchronise a test.
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${command} ${args.join(' ')} exited with ${child.exitCode}: ${stderr}`);
      if (await healthy(`http://127.0.0.1:${httpPort}/healthz`)) return performance.now() - started;
      if (performance.now() - started > 60_000) throw new Error(`no /healthz within 60 s: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
    await exited;
  }
}

async function untilExit(command: string, args: string[]): Promise<number> {
  const started = performance.now();
  const child = spawn(command, args, { cwd: ROOT, stdio: 'ignore' });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}`);
  return performance.now() - started;
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function measure(name: string, once: () => Promise<number>) {
  const samples: number[] = [];
  for (let i = 0; i < RUNS; i++) samples.push(await once());
  const line = { scenario: name, medianMs: Math.round(median(samples)), samplesMs: samples.map(Math.round) };
  console.log(JSON.stringify(line));
  return line;
}

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-start-'));
try {
  console.log(JSON.stringify({ root: ROOT, node: process.version, runs: RUNS }));
  let fresh = 0;
  await measure('npm start → /healthz, fresh data dir', () =>
    untilHealthy('npm', ['start', '--silent'], path.join(temp, `fresh-${fresh++}`)),
  );
  const warm = path.join(temp, 'warm');
  await untilHealthy('npm', ['start', '--silent'], warm);
  await measure('npm start → /healthz, existing data dir', () => untilHealthy('npm', ['start', '--silent'], warm));
  await measure('node bin/herald.js serve → /healthz, existing data dir', () =>
    untilHealthy(process.execPath, ['bin/herald.js', 'serve'], warm),
  );
  await measure('herald --help', () => untilExit(process.execPath, ['bin/herald.js', '--help']));
} finally {
  fs.rmSync(temp, { recursive: true, force: true });
}
