import { fork, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/*
 * Every load generator, baseline server and test double runs in a process of its own, so
 * none of them shares the measured server's event loop. Parent and child talk over the
 * fork IPC channel with small request/reply messages.
 */

export const BENCH_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const ROOT_DIR = path.dirname(BENCH_DIR);

interface Request {
  id: number;
  cmd: string;
  args: unknown;
}
interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}
interface Event {
  event: string;
  data: unknown;
}

const children = new Set<ChildProcess>();

/** Kills `child` with the bench's own children (a server the bench started, say). */
export function adopt(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Kills every child still running (on the way out, and when anything fails). */
export function killAllChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}
process.on('exit', killAllChildren);

/**
 * A plain child process (not a bench child: the APNs double, say) killed with the others
 * on the way out. Its first stdout line, JSON, is returned.
 */
export async function spawnWithJsonLine<T>(
  name: string,
  args: string[],
  timeoutMs = 60_000,
  /** Node flags before the script (--cpu-prof, say). */
  nodeFlags: string[] = [],
): Promise<{ process: ChildProcess; line: T }> {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', ...args], {
    cwd: ROOT_DIR,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const line = await new Promise<T>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`${name} printed nothing within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n');
      if (end === -1) return;
      clearTimeout(timer);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      try {
        resolve(JSON.parse(text.slice(0, end)) as T);
      } catch (error) {
        reject(new Error(`${name}: ${(error as Error).message}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited (code ${code}) while starting`)));
  });
  return { process: child, line };
}

/** Stops a plain child: SIGTERM, then SIGKILL if it lingers. */
export async function stopProcess(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface SpawnOptions {
  /** Extra node flags (--cpu-prof, --expose-gc, --max-old-space-size=…). */
  nodeFlags?: string[];
  env?: Record<string, string>;
  /** The child kills itself after this long, whatever happens. */
  lifetimeMs?: number;
  cwd?: string;
}

/** A forked TypeScript child (run through tsx) that answers requests. */
export class Child {
  private nextId = 1;
  private pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private listeners = new Map<string, Array<(data: unknown) => void>>();
  private exited: Promise<number | null>;
  /** Resolves once the child announced itself (serveParent sends "ready"). */
  readonly ready: Promise<void>;
  readonly process: ChildProcess;

  constructor(
    readonly name: string,
    file: string,
    options: SpawnOptions = {},
  ) {
    this.process = fork(path.join(BENCH_DIR, file), [], {
      cwd: options.cwd ?? ROOT_DIR,
      execArgv: ['--import', 'tsx', ...(options.nodeFlags ?? [])],
      env: {
        ...process.env,
        ...options.env,
        BENCH_CHILD_LIFETIME_MS: String(options.lifetimeMs ?? 10 * 60 * 1000),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.add(this.process);
    // A request to a child that died fails by itself (below); the channel's own error is not the bench's end.
    this.process.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code) => {
        children.delete(this.process);
        for (const [, waiter] of this.pending) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error(`${this.name} exited (code ${code}) before answering`));
        }
        this.pending.clear();
        resolve(code);
      });
    });
    this.ready = new Promise((resolve, reject) => {
      this.on('ready', () => resolve());
      this.process.once('exit', (code) => reject(new Error(`${this.name} exited (code ${code}) while starting`)));
    });
    this.ready.catch(() => {});
    this.process.on('message', (message: Reply | Event) => {
      if ('event' in message) {
        for (const listener of this.listeners.get(message.event) ?? []) listener(message.data);
        return;
      }
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      clearTimeout(waiter.timer);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`${this.name}: ${message.error}`));
    });
  }

  get pid(): number {
    return this.process.pid!;
  }

  async request<T>(cmd: string, args: unknown = {}, timeoutMs = 120_000): Promise<T> {
    await this.ready;
    if (!this.process.connected) throw new Error(`${this.name} has exited; "${cmd}" cannot be asked`);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: "${cmd}" did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.process.send({ id, cmd, args } satisfies Request);
    });
  }

  on(event: string, listener: (data: unknown) => void): void {
    const list = this.listeners.get(event) ?? [];
    list.push(listener);
    this.listeners.set(event, list);
  }

  /** Asks the child to stop (its "stop" handler), then kills it if it lingers. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    try {
      await this.request('stop', {}, graceMs);
    } catch {
      // it may have exited while answering
    }
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    this.process.kill('SIGKILL');
  }
}

type Handler = (args: any) => unknown | Promise<unknown>;

/**
 * The child's side: answers requests with the given handlers, leaves when the parent goes
 * away, and never outlives its lifetime bound. "stop" runs the given handler, then exits.
 */
export function serveParent(handlers: Record<string, Handler>): void {
  if (!process.send) throw new Error('this file runs as a child of bench/run.ts');
  const lifetime = Number(process.env.BENCH_CHILD_LIFETIME_MS ?? 600_000);
  setTimeout(() => {
    process.stderr.write(`bench child ${process.argv[1]} reached its lifetime bound, exiting\n`);
    process.exit(3);
  }, lifetime).unref();
  process.on('disconnect', () => process.exit(0));
  process.on('message', async (message: Request) => {
    const reply = (r: Omit<Reply, 'id'>) => process.send?.({ id: message.id, ...r });
    try {
      const handler = handlers[message.cmd];
      if (message.cmd === 'stop') {
        if (handler) await handler(message.args);
        reply({ ok: true });
        setTimeout(() => process.exit(0), 20);
        return;
      }
      if (!handler) throw new Error(`unknown command ${message.cmd}`);
      reply({ ok: true, result: await handler(message.args) });
    } catch (error) {
      reply({ ok: false, error: (error as Error).stack ?? String(error) });
    }
  });
  process.send({ event: 'ready', data: { pid: process.pid } } satisfies Event);
}

export function emitToParent(event: string, data: unknown): void {
  process.send?.({ event, data } satisfies Event);
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Milliseconds on CLOCK_MONOTONIC (process.hrtime): one clock for every process of the
 * machine, so a time taken in one process subtracts from a time taken in another.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Server RSS after a full collection, when the process runs with --expose-gc. */
export function settledRss(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  return process.memoryUsage().rss;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
