/**
 * Micro-benchmark (not part of `npm run bench`): what keeping SQLite's write-ahead log to its
 * bound costs the serving thread. One-to-one messages through `addMessage` at a fixed rate
 * (no HTTP), with a small bound so that the log starts over many times; prints how often and
 * how long writers were held for the checkpoint's last round, the longest transaction
 * (BEGIN → COMMIT, where a start-over's truncation or sync on the serving thread shows), and
 * the event loop's delay.
 * Usage: node --import tsx bench/micro/log-holds.ts  (PAIRS=500 RATE=1000 DURATION=30 BOUND_MB=32)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { openStore } from '../../src/store/db.ts';
import { LocalBus } from '../../src/cluster/bus.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { oneToOnePairs } from '../lib/pairs.ts';

const PAIRS = Number(process.env.PAIRS ?? 500);
const RATE = Number(process.env.RATE ?? 1000);
const DURATION = Number(process.env.DURATION ?? 30);
const BOUND_MB = Number(process.env.BOUND_MB ?? 32);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-log-holds-'));
const store = await openStore({ sqliteFile: path.join(dir, 'herald.db'), logBoundBytes: BOUND_MB * 1024 * 1024 });
const notifier = new Notifier(store, new LocalBus());
const send = await oneToOnePairs(store, notifier, PAIRS, 'example.org');

const work = createHistogram();
const unit = createHistogram();
notifier.onBatchTimed((times) => {
  work.record(Math.max(1, Math.round(times.workMs * 1000)));
  // (unitsMs is missing on trees before it came: the comparison runs this file on them too.)
  for (const ms of (times as { unitsMs?: number[] }).unitsMs ?? []) unit.record(Math.max(1, Math.round(ms * 1000)));
});
const loop = monitorEventLoopDelay({ resolution: 1 });
const holdsBefore = store.logHolds!();
loop.enable();
const total = RATE * DURATION;
const started = performance.now();
let sent = 0;
const inFlight: Promise<unknown>[] = [];
await new Promise<void>((resolve) => {
  const tick = () => {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * RATE) + 1);
    while (sent < due) {
      inFlight.push(send(sent++));
    }
    if (sent >= total) resolve();
    else setTimeout(tick, 1);
  };
  tick();
});
await Promise.all(inFlight);
loop.disable();
const holds = store.logHolds!();
const ms = (h: { max: number; percentile(p: number): number }) =>
  `p99 ${(h.percentile(99) / 1e3).toFixed(2)} ms, max ${(h.max / 1e3).toFixed(1)} ms`;
console.log(
  `${total} messages at ${RATE}/s, bound ${BOUND_MB} MB: writers held ${holds.count - holdsBefore.count}× ` +
    `(${(holds.totalMs - holdsBefore.totalMs).toFixed(1)} ms in all, longest ${holds.maxMs.toFixed(1)} ms)`,
);
console.log(`  BEGIN → COMMIT ${ms(work)}; message handed in → published ${ms(unit)}`);
console.log(`  event-loop delay p99 ${(loop.percentile(99) / 1e6).toFixed(2)} ms, max ${(loop.max / 1e6).toFixed(1)} ms`);
await notifier.close();
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
