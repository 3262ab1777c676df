'use strict';
// Copies the SQLite write-ahead log into the database file from a thread of its own, so
// that no commit on the serving connection stops the event loop to do it (the serving
// connection has automatic checkpoints turned off). PASSIVE never waits for or blocks a
// writer: it copies what it can and leaves the rest for the next round.
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);

const db = new Database(workerData.file);
db.pragma('busy_timeout = 1000');

function checkpoint() {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (error) {
    parentPort.postMessage({ type: 'error', message: String(error && error.message) });
  }
}

const timer = setInterval(checkpoint, workerData.intervalMs);

parentPort.on('message', (message) => {
  if (message !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort.postMessage({ type: 'closed' });
});
