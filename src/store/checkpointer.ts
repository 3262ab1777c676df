import fs from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type SQLite from 'better-sqlite3';

/** The SQLite write-ahead log's checkpoint thread, as the store sees it. */
export interface Checkpointer {
  /** Undefined while writes may go ahead; past the log's bound, a promise to wait on (see below). */
  room(): Promise<void> | undefined;
  /** How often and how long writers have been held for the last round so far (the bench reads it). */
  holds(): LogHolds;
  close(): Promise<void>;
}

/** Writers held for the log's last round: how many times, and the longest and summed waits, ms. */
export interface LogHolds {
  count: number;
  maxMs: number;
  totalMs: number;
}

/** How often the checkpoint thread copies the write-ahead log into the database. */
const CHECKPOINT_INTERVAL_MS = 1000;
/**
 * The write-ahead log's bound, past which it is made to start over. Under a steady stream
 * of writes it otherwise never does (bench/micro/add-statements.ts, GROUP=2000: 2.4 GB
 * after 400 messages), and commits get slower as it grows: 36 ms for a 2,000-recipient
 * message at that size against 12 ms with the log kept to this bound (23.3 ms a message in
 * all against 38.0). Each time the bound is passed writers wait for the last round (15–21 ms
 * on a shared disk, bench/micro/log-holds.ts): with a bound of 64 MB that was every ~2 s at
 * 1,000 one-to-one messages a second (7.5 log pages each), with this one every ~9 s.
 */
export const LOG_BOUND_BYTES = 256 * 1024 * 1024;
/** How often writers look at the log's size (one read of 100 bytes of its index). */
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
 * next write starts the log over.
 *
 * The log file is not cut back when it starts over (journal_size_limit stays off on the
 * serving connection): the connection that starts the log over truncates the file in its
 * next commit, which was a 15 ms ftruncate on the event loop every ~9 s at 1,000
 * messages/s (strace of the latency bench). The file keeps the size it reached, the bound
 * and what was written while the thread caught up, and is written over from its start. Its
 * size no longer tells how much of it is in use: the log's own index does (see logReader).
 */
export function startCheckpointer(database: SQLite.Database, file: string, boundBytes: number): Checkpointer {
  const worker = new Worker(new URL('./checkpoint-worker.cjs', import.meta.url), {
    workerData: { file, driver: createRequire(import.meta.url).resolve('better-sqlite3'), intervalMs: CHECKPOINT_INTERVAL_MS },
  });
  database.pragma('wal_autocheckpoint = 0');
  const readLog = logReader(`${file}-shm`);
  let running = true;
  let nextLook = 0;
  let catchUps = 0;
  /**
   * The catch-up under way (numbered, so that a late answer to an earlier one is not taken
   * for it): `near` once little is left to copy; `wait` from the next room() on, which
   * writers wait on while the thread copies the rest.
   */
  let catchUp: { id: number; startedAt: number; near?: boolean; heldAt?: number; wait?: Promise<void>; release?: () => void } | undefined;
  const holds: LogHolds = { count: 0, maxMs: 0, totalMs: 0 };
  const endCatchUp = (pause: number) => {
    if (catchUp?.heldAt !== undefined) {
      const held = performance.now() - catchUp.heldAt;
      holds.count++;
      holds.totalMs += held;
      if (held > holds.maxMs) holds.maxMs = held;
    }
    catchUp?.release?.();
    catchUp = undefined;
    nextLook = Date.now() + pause;
  };
  // Called by room(), so between two of the notifier's transactions: none of its writes is
  // under way while the thread copies the rest.
  const holdWriters = (held: NonNullable<typeof catchUp>): Promise<void> => {
    held.heldAt = performance.now();
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
      const log = readLog();
      // All of it copied: the next write starts it over.
      if (!log || log.bytes <= boundBytes || log.copied) return undefined;
      catchUp = { id: ++catchUps, startedAt: now };
      worker.postMessage({ type: 'catch-up', id: catchUp.id });
      return undefined;
    },
    holds: () => ({ ...holds }),
    close: () =>
      new Promise<void>((resolve) => {
        running = false;
        readLog.close();
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

/**
 * Reads how much of the write-ahead log is in use from its index, the `-shm` file SQLite
 * keeps beside it (https://sqlite.org/walformat.html, "The WAL-Index Header"): the header's
 * first copy holds the page size (u16 at byte 14, 1 meaning 65,536) and the last valid frame
 * (mxFrame, u32 at 16), and the checkpoint information after both copies the frames already
 * copied into the database (nBackfill, u32 at 96), all in the machine's byte order. A read
 * that meets a header being rewritten is at worst one look early or late.
 */
function logReader(shmFile: string): { (): { bytes: number; copied: boolean } | undefined; close(): void } {
  const header = Buffer.alloc(100);
  let fd: number | undefined;
  const read = () => {
    try {
      fd ??= fs.openSync(shmFile, 'r');
      if (fs.readSync(fd, header, 0, 100, 0) < 100) return undefined;
    } catch {
      return undefined;
    }
    const little = os.endianness() === 'LE';
    const pageField = little ? header.readUInt16LE(14) : header.readUInt16BE(14);
    const frames = little ? header.readUInt32LE(16) : header.readUInt32BE(16);
    const copied = little ? header.readUInt32LE(96) : header.readUInt32BE(96);
    return { bytes: frames * (pageField === 1 ? 65536 : pageField), copied: copied >= frames };
  };
  return Object.assign(read, {
    close() {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
    },
  });
}
