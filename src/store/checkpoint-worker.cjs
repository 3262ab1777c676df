'use strict';
// Copies the SQLite write-ahead log into the database file from a thread of its own, so
// that no commit on the serving connection stops the event loop to do it (the serving
// connection has automatic checkpoints turned off). PASSIVE never waits for or blocks a
// writer: it copies what it can and leaves the rest for the next round.
//
// The log only starts over when a write begins with every frame already copied, which a
// steady stream of writes never allows. Once the log is past its bound the serving side
// asks for a catch-up: rounds back to back while writes go on, until little is left
// ('near'); then it holds its writes back (without blocking its event loop) and asks to
// finish, a round over the few frames left ('caught-up'). Each round syncs what it copies,
// so the wait is short when the rounds before it have done most of the work.
//
// A round that does not copy the whole log does not sync the database file (SQLite syncs it
// only before the log may start over), so the finish's sync used to flush every page copied
// since the last start: 20–40 ms of the writers' wait on a shared disk. The database file is
// synced here before writers are asked to wait, and the finish's sync has only its own few
// pages left. (SQLite still makes every sync it made before; this one comes on top.)
const fs = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);

// Frames left to copy at which writers are asked to wait for the last round.
const NEAR_FRAMES = 2048;
// Rounds of a catch-up before the writers are asked to wait whatever is left.
const APPROACH_ROUNDS = 20;
// Rounds of the finish (a write outside the notifier can still add frames meanwhile).
const FINISH_ROUNDS = 3;

const db = new Database(workerData.file);
db.pragma('busy_timeout = 1000');
/** Only for fdatasync: SQLite writes the file through its own descriptors. */
const dbFd = fs.openSync(workerData.file, 'r');

/** One PASSIVE checkpoint: the frames in the log and how many of them are in the database now. */
function checkpoint() {
  try {
    const [{ log, checkpointed }] = db.pragma('wal_checkpoint(PASSIVE)');
    return { log, checkpointed };
  } catch (error) {
    parentPort.postMessage({ type: 'error', message: String(error && error.message) });
    return undefined;
  }
}

/** The catch-up the serving side is waiting for; an earlier one still running stops. */
let current = 0;

function approach(id, round) {
  if (id !== current) return;
  const result = checkpoint();
  if (!result || result.log - result.checkpointed <= NEAR_FRAMES || round + 1 >= APPROACH_ROUNDS) {
    try {
      fs.fdatasyncSync(dbFd);
    } catch (error) {
      parentPort.postMessage({ type: 'error', message: String(error && error.message) });
    }
    // What was written during the sync, copied before the writers wait.
    checkpoint();
    parentPort.postMessage({ type: 'near', id });
    return;
  }
  // A turn of the event loop between rounds, so that a newer catch-up or a close is not kept waiting.
  setImmediate(() => approach(id, round + 1));
}

function finish(id) {
  for (let round = 0; round < FINISH_ROUNDS; round++) {
    const result = checkpoint();
    if (!result || result.checkpointed >= result.log) break;
  }
  parentPort.postMessage({ type: 'caught-up', id });
}

const timer = setInterval(checkpoint, workerData.intervalMs);

parentPort.on('message', (message) => {
  if (message && message.type === 'catch-up') {
    current = message.id;
    return approach(message.id, 0);
  }
  if (message && message.type === 'finish') return finish(message.id);
  if (message !== 'close') return;
  current = 0;
  clearInterval(timer);
  fs.closeSync(dbFd);
  db.close();
  parentPort.postMessage({ type: 'closed' });
});
