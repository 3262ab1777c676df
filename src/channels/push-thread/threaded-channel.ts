import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import type { Notification } from '../../model/notification.ts';
import type { PushChannel, PushProvider, PushTarget, SendOutcome } from '../../model/channel.ts';
import { pushThreadResourceLimits } from './heap.ts';

/*
 * A push channel run in worker threads of its own (APNs, FCM). Its HTTP/2 work (TLS,
 * framing, one stream object per push) is most of the CPU time a push costs Herald; in a
 * thread of its own it runs beside the feed and outbox writes, on another core, and keeps
 * the serving event loop free for live frames while a push storm goes out.
 *
 * Pushes cross in batches, not one message each: send() collects what one outbox batch
 * hands over in a turn of the event loop, each notification once however many of its
 * user's devices it goes to; answers come back the same way, delivered ones as bare numbers.
 * With several threads (each with a connection of its own) batches take turns.
 * A thread that stops has everything it held answered with a retry, and the next batch for
 * its turn starts a new one, so nothing handed over is lost: the outbox row stays pending.
 *
 * The thread's side is servePushThread() (thread-body.ts), called by the provider's body.
 */

/** Main thread → worker. */
export type ToThread =
  /** pushes: [push number, index into notifications, device token] triples, flat. */
  { type: 'send'; notifications: Notification[]; pushes: Array<number | string> } | { type: 'close' };

/** Worker → main thread. */
export type FromThread =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'answers'; delivered: number[]; other: Array<[number, SendOutcome]> }
  | { type: 'log'; level: 'warn' | 'error'; fields: Record<string, unknown>; message: string };

export interface ThreadData {
  config: Config;
  /** The body's module URL, for entry.mjs (runs from the TypeScript sources only). */
  body: string;
}

export interface PushThreadOptions {
  provider: PushProvider;
  /** The provider's body module (see pushThreadBody()): it calls servePushThread(). */
  body: URL;
  config: Config;
  /** Threads to run, each with a connection of its own. */
  threads: number;
  log?: Logger;
}

/**
 * The body module `name` beside `moduleUrl` (the caller's import.meta.url): its .js file in
 * the compiled build, its .ts source when Herald runs from the sources.
 */
export function pushThreadBody(moduleUrl: string, name: string): URL {
  return new URL(`./${name}${moduleUrl.endsWith('.ts') ? '.ts' : '.js'}`, moduleUrl);
}

/**
 * The worker's entry: the body itself when compiled; from the TypeScript sources (tests,
 * `node --import tsx`) a worker loads its modules on its own, so entry.mjs registers tsx in
 * it first and then loads the body.
 */
function entryOf(body: URL): URL {
  return body.pathname.endsWith('.ts') ? new URL('./entry.mjs', import.meta.url) : body;
}

interface Waiting {
  context: unknown;
  /** The context's type is the sender's own (PushChannel.send is generic over it), so it is handed back `as never`. */
  done: (outcome: SendOutcome, context: never) => void;
  /** The thread it was handed to (its index), or -1 while it waits in the batch. */
  thread: number;
}

interface Thread {
  worker: Worker;
  started: Promise<void>;
}

/** How long close() lets the threads answer what they hold before stopping them. */
const CLOSE_GRACE_MS = 5000;

export class ThreadedPushChannel implements PushChannel {
  readonly provider: PushProvider;
  private readonly threads: Array<Thread | undefined>;
  /** The thread the next batch goes to. */
  private turn = 0;
  private readonly waiting = new Map<number, Waiting>();
  private nextNumber = 1;
  /** The batch being collected this turn, sent in one message. */
  private batch?: { notifications: Notification[]; index: Map<Notification, number>; pushes: Array<number | string>; numbers: number[] };
  private closed = false;
  private readonly log?: Logger;

  private constructor(private readonly options: PushThreadOptions) {
    this.provider = options.provider;
    this.log = options.log;
    this.threads = new Array<Thread | undefined>(options.threads).fill(undefined);
  }

  /**
   * Starts the threads, each with its own connection, and waits until their channels are
   * ready; a channel that cannot start is an error here, as in-thread.
   */
  static async start(options: PushThreadOptions): Promise<ThreadedPushChannel> {
    const channel = new ThreadedPushChannel(options);
    try {
      await Promise.all(channel.threads.map((_, i) => channel.spawn(i).started));
    } catch (error) {
      await channel.close();
      throw error;
    }
    return channel;
  }

  private spawn(slot: number): Thread {
    const { body, config, provider } = this.options;
    const worker = new Worker(entryOf(body), {
      workerData: { config, body: body.href } satisfies ThreadData,
      resourceLimits: pushThreadResourceLimits(),
    });
    // A thread never keeps the process alive; close() stops them in order.
    worker.unref();
    const started = new Promise<void>((resolve, reject) => {
      worker.on('message', (message: FromThread) => {
        switch (message.type) {
          case 'ready':
            return resolve();
          case 'failed':
            return reject(new Error(message.message));
          case 'answers':
            return this.answered(message);
          case 'log':
            this.log?.[message.level](message.fields, message.message);
            return;
        }
      });
      worker.on('error', (error) => {
        this.log?.error({ err: error }, `${provider} push thread failed`);
        reject(error);
      });
      worker.on('exit', (code) => {
        reject(new Error(`${provider} push thread stopped (exit code ${code})`));
        if (this.threads[slot]?.worker === worker) this.threads[slot] = undefined;
        this.answerAll(`${provider} push thread stopped`, slot);
      });
    });
    const thread = { worker, started };
    this.threads[slot] = thread;
    return thread;
  }

  send<C>(target: PushTarget, notification: Notification, context: C, done: (outcome: SendOutcome, context: C) => void): void {
    if (this.closed) return done({ kind: 'retry', reason: `${this.provider} channel is closed` }, context);
    const number = this.nextNumber++;
    this.waiting.set(number, { context, done, thread: -1 });
    let batch = this.batch;
    if (!batch) {
      batch = this.batch = { notifications: [], index: new Map(), pushes: [], numbers: [] };
      queueMicrotask(this.flush);
    }
    let at = batch.index.get(notification);
    if (at === undefined) {
      at = batch.notifications.push(notification) - 1;
      batch.index.set(notification, at);
    }
    // A push needs only the device token (APNs, FCM); the thread is not told the rest of the device.
    batch.pushes.push(number, at, target.token);
    batch.numbers.push(number);
  }

  /** Hands the batch to the next thread in turn, starting it again if it stopped. */
  private readonly flush = (): void => {
    const batch = this.batch;
    this.batch = undefined;
    if (!batch) return;
    const slot = this.turn;
    this.turn = (this.turn + 1) % this.threads.length;
    let thread = this.threads[slot];
    if (!thread) {
      thread = this.spawn(slot);
      // Its start failing answers what it was given with a retry (its exit does).
      thread.started.catch(() => {});
    }
    for (const number of batch.numbers) this.waiting.get(number)!.thread = slot;
    thread.worker.postMessage({ type: 'send', notifications: batch.notifications, pushes: batch.pushes } satisfies ToThread);
  };

  private answered(message: Extract<FromThread, { type: 'answers' }>): void {
    for (const number of message.delivered) this.answer(number, DELIVERED);
    for (const [number, outcome] of message.other) this.answer(number, outcome);
  }

  private answer(number: number, outcome: SendOutcome): void {
    const waiting = this.waiting.get(number);
    if (!waiting) return;
    this.waiting.delete(number);
    waiting.done(outcome, waiting.context as never);
  }

  /** Pushes handed to a thread (any thread when unset) and not yet answered get a retry. */
  private answerAll(reason: string, slot?: number): void {
    const outcome: SendOutcome = { kind: 'retry', reason };
    for (const [number, waiting] of [...this.waiting]) {
      if (slot === undefined || waiting.thread === slot) this.answer(number, outcome);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    await Promise.all(
      this.threads.map(async (thread) => {
        if (!thread) return;
        const exited = new Promise<void>((resolve) => thread.worker.once('exit', () => resolve()));
        await thread.started.catch(() => {});
        thread.worker.postMessage({ type: 'close' } satisfies ToThread);
        const timer = setTimeout(() => void thread.worker.terminate(), CLOSE_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
    this.batch = undefined;
    this.answerAll(`${this.provider} channel is closed`);
  }
}

const DELIVERED: SendOutcome = { kind: 'delivered' };
