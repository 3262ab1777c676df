import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { tracked } from './children.ts';

/** The admin token of nodes run as child processes. */
export const CHILD_ADMIN_TOKEN = 'crash-test-admin-token';
const root = path.resolve(import.meta.dirname, '../..');

export interface HeraldProcess {
  process: ChildProcess;
  http: string;
  ws: string;
  exited: Promise<number | null>;
}

/** Runs `herald serve` as a process of its own (so a test can SIGKILL it) and resolves once it listens. */
export async function startHerald(
  dataDir: string,
  env: Record<string, string>,
  /** Told the process as soon as it is spawned, so a caller can kill one that never listens. */
  onSpawn?: (child: ChildProcess) => void,
): Promise<HeraldProcess> {
  const child = tracked(
    spawn(process.execPath, [path.join(root, 'bin/herald.js'), 'serve'], {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        HERALD_DATA_DIR: dataDir,
        HERALD_HOST: '127.0.0.1',
        HERALD_HTTP_PORT: '0',
        HERALD_HTTPS_PORT: '0',
        HERALD_UDP_PORT: '0',
        HERALD_ADMIN_TOKEN: CHILD_ADMIN_TOKEN,
        HERALD_LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  onSpawn?.(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const endpoints = await new Promise<{ http: string; ws: string }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; endpoints?: { http: string; ws: string } };
        if (entry.msg === 'Herald is listening' && entry.endpoints) resolve(entry.endpoints);
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => reject(new Error(`herald exited with ${code} before listening: ${stderr}`)));
  });
  return { process: child, ...endpoints, exited };
}

/** Stops a child node that still runs (SIGTERM) and waits for it to exit. */
export async function stopHerald(child: HeraldProcess): Promise<void> {
  if (child.process.exitCode === null && child.process.signalCode === null) {
    child.process.kill('SIGTERM');
    await child.exited;
  }
}

/** A POST of the admin API (/v1…) of a child node; throws on a refusal. */
export async function adminPost(base: string, route: string, body: unknown) {
  const response = await fetch(`${base}/v1${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${CHILD_ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status >= 300) throw new Error(`${route}: ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, string>;
}
