import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type SQLite from 'better-sqlite3';

/** The SQLite write-ahead log's checkpoint thread, as the store sees it. */
export interface Checkpointer {
  /** Undefined while writes may go ahead; past the log's bound, a promise to wait on (see below). */
  room(): Promise<void> | undefined;
  close(): Promise<void>;
}

/** How often the checkpoint thread copies the write-ahead log into the database. */
const CHECKPOINT_INTERVAL_MS = 1000;
/**
 * The write-ahead log's bound, past which it is made to start over. Under a steady stream
 * of writes it otherwise never does (bench/micro/add-statements.ts, GROUP=2000: 2.4 GB
 * after 400 messages), and commits get slower as it grows: 36 ms for a 2,000-recipient
 * message at that size against 12 ms with the log kept to this bound (23.3 ms a message in
 * all against 38.0). Each time the bound is passed writers wait a few milliseconds for the
 * last round (1–21 ms in the latency bench): with a bound of 64 MB that was every ~2 s at
 * 1,000 one-to-one messages a second, with this one it was not reached in the bench.
 */
export const LOG_BOUND_BYTES = 256 * 1024 * 1024;
/** How often writers look at the log's size (one stat call). */
const LOG_LOOK_MS = 10;
/**
 * The longest writers are held for the last round. It is one checkpoint of the few frames
 * left, with its two syncs: 3–6 ms in the latency bench. A disk slow to sync must not hold
 * notifications back longer: writers go on, and the log is tried again after a pause.
 */
const HOLD_LIMIT_MS = 50;
/** After a catch-up that could not finish in time, the next is tried this much later. */
const CATCH_UP_BACKOFF_MS = 1000;
/** A catch-up whose thread has not come near the end in this long is given up. */
const APPROACH_TIMEOUT_MS = 10_000;

/**
 * SQLite's automatic checkpoint runs inside the commit that crosses 1,000 log pages, on the
 * event loop: a commit now and then pays for copying the log into the database (measured
 * at 10-20 % of a large fan-out). Here it is turned off for the serving connection and
 * done by a worker thread with a connection of its own.
 *
 * The log starts over only when a write begins with all of it copied, which a steady
 * stream of writes never allows. So room() looks at the log now and then; once it is past
 * its bound the thread catches up while writes go on, and when little is left writers get
 * a promise to wait on while it copies the rest (the event loop stays free meanwhile); the
 * next write starts the log over. journal_size_limit then cuts the file back to the bound,
 * so its size tells when the bound is passed again.
 */
export function startCheckpointer(database: SQLite.Database, file: string, boundBytes: number): Checkpointer {
  const worker = new Worker(new URL('./checkpoint-worker.cjs', import.meta.url), {
    workerData: { file, driver: createRequire(import.meta.url).resolve('better-sqlite3'), intervalMs: CHECKPOINT_INTERVAL_MS },
  });
  database.pragma('wal_autocheckpoint = 0');
  database.pragma(`journal_size_limit = ${boundBytes}`);
  const logFile = `${file}-wal`;
  let running = true;
  let nextLook = 0;
  let catchUps = 0;
  /**
   * The catch-up under way (numbered, so that a late answer to an earlier one is not taken
   * for it): `near` once little is left to copy; `wait` from the next room() on, which
   * writers wait on while the thread copies the rest.
   */
  let catchUp: { id: number; startedAt: number; near?: boolean; wait?: Promise<void>; release?: () => void } | undefined;
  const endCatchUp = (pause: number) => {
    catchUp?.release?.();
    catchUp = undefined;
    nextLook = Date.now() + pause;
  };
  // Called by room(), so between two of the notifier's transactions: none of its writes is
  // under way while the thread copies the rest.
  const holdWriters = (held: NonNullable<typeof catchUp>): Promise<void> => {
    const timer = setTimeout(() => endCatchUp(CATCH_UP_BACKOFF_MS), HOLD_LIMIT_MS);
    held.wait = new Promise<void>((resolve) => {
      held.release = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    worker.postMessage({ type: 'finish', id: held.id });
    return held.wait;
  };
  // A checkpoint thread that cannot run must not leave the log growing without bound, nor writers waiting.
  const fallBack = () => {
    if (!running) return;
    running = false;
    database.pragma('wal_autocheckpoint = 1000');
    endCatchUp(0);
  };
  worker.on('error', fallBack);
  worker.on('exit', fallBack);
  worker.on('message', (message: { type: string; id?: number }) => {
    if (!catchUp || message.id !== catchUp.id) return;
    if (message.type === 'near') catchUp.near = true;
    else if (message.type === 'caught-up') endCatchUp(LOG_LOOK_MS);
  });
  worker.unref();
  return {
    room(): Promise<void> | undefined {
      const now = Date.now();
      if (catchUp) {
        if (catchUp.wait) return catchUp.wait;
        if (catchUp.near) return holdWriters(catchUp);
        if (now - catchUp.startedAt > APPROACH_TIMEOUT_MS) endCatchUp(CATCH_UP_BACKOFF_MS);
        return undefined;
      }
      if (!running || now < nextLook) return undefined;
      nextLook = now + LOG_LOOK_MS;
      const size = fs.statSync(logFile, { throwIfNoEntry: false })?.size ?? 0;
      if (size <= boundBytes) return undefined;
      catchUp = { id: ++catchUps, startedAt: now };
      worker.postMessage({ type: 'catch-up', id: catchUp.id });
      return undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        running = false;
        endCatchUp(0);
        // Closing waits for the thread, so it keeps the process alive meanwhile.
        worker.ref();
        const done = () => resolve();
        worker.once('exit', done);
        worker.on('message', (message: { type: string }) => {
          if (message.type === 'closed') void worker.terminate().then(done, done);
        });
        worker.postMessage('close');
      }),
  };
}
