/**
 * Micro-benchmark (not part of `npm run bench`): where a one-to-one message's time goes on
 * PostgreSQL at a fixed rate, through the real `addMessage` path in this process (no HTTP, no
 * WebSocket): the latency of each call (p50, p99, max), and per statement sent to the
 * database how long it took from being handed to the driver to its answer, and how many a
 * message sent. SQLite beside it at the same rate.
 * Usage: DATABASE_URL=postgres://… node --import tsx bench/micro/pg-message-latency.ts
 *   RATE=n messages/s (1000), SECONDS=n (5), PAIRS=n (500), ONLY=postgres
 */
import pg from 'pg';
import { openStore, type Store } from '../../src/store/db.ts';
import { SecretBox } from '../../src/store/secrets.ts';
import { LocalBus } from '../../src/cluster/bus.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { createBenchDatabase } from '../lib/database.ts';
import { oneToOnePairs } from '../lib/pairs.ts';
import { percentile } from '../lib/stats.ts';

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('DATABASE_URL=postgres://… is needed');
const RATE = Number(process.env.RATE ?? 1000);
const SECONDS = Number(process.env.SECONDS ?? 5);
const PAIRS = Number(process.env.PAIRS ?? 500);

/** Time of each statement by its first word(s), while `tracing` is on. */
const spans = new Map<string, number[]>();
let tracing = false;
const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const result = query.apply(this, args);
  if (!tracing || !(result instanceof Promise)) return result;
  const config = args[0] as string | { text: string };
  const text = typeof config === 'string' ? config : config.text;
  const label = text.replace(/\s+/g, ' ').slice(0, 40);
  const t0 = performance.now();
  void result.then(
    () => {
      let list = spans.get(label);
      if (!list) spans.set(label, (list = []));
      list.push(performance.now() - t0);
    },
    () => {},
  );
  return result;
} as typeof pg.Client.prototype.query;

async function measure(store: Store, label: string): Promise<void> {
  const notifier = new Notifier(store, new LocalBus());
  const send = await oneToOnePairs(store, notifier, PAIRS, 'lat.example');
  const run = async (first: number, seconds: number) => {
    const latencies: number[] = [];
    const pending: Promise<void>[] = [];
    const total = Math.round(RATE * seconds);
    const t0 = performance.now();
    for (let k = 0; k < total; k++) {
      const due = t0 + (k * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      const started = performance.now();
      pending.push(send(first + k).then(() => void latencies.push(performance.now() - started)));
    }
    await Promise.all(pending);
    return latencies;
  };
  await run(-100_000, 2); // warm-up
  spans.clear();
  tracing = true;
  const cpu0 = process.cpuUsage();
  const latencies = await run(0, SECONDS);
  tracing = false;
  const cpu = process.cpuUsage(cpu0);
  const f = (v: number) => v.toFixed(2);
  console.log(
    `${label}: ${latencies.length} messages at ${RATE}/s: p50 ${f(percentile(latencies, 50))} ms, p99 ${f(percentile(latencies, 99))} ms, ` +
      `max ${f(Math.max(...latencies))} ms; CPU here ${Math.round((cpu.user + cpu.system) / latencies.length)} µs/message`,
  );
  for (const [text, list] of spans) {
    console.log(
      `  ${(list.length / latencies.length).toFixed(2)}/message  p50 ${f(percentile(list, 50))}  p99 ${f(percentile(list, 99))} ms  ${text}`,
    );
  }
  await notifier.close();
}

if (process.env.ONLY !== 'postgres') {
  const sqliteStore = await openStore({ sqliteFile: ':memory:' });
  await measure(sqliteStore, 'SQLite (in memory)');
  await sqliteStore.close();
}
const database = await createBenchDatabase(databaseUrl);
try {
  const pgStore = await openStore({ databaseUrl: database.url, secrets: SecretBox.ephemeral() });
  await measure(pgStore, 'PostgreSQL');
  await pgStore.close();
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await database.drop();
}
