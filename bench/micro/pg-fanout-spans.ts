/**
 * Micro-benchmark (not part of `npm run bench`): where the time of a group message goes on
 * PostgreSQL. One group of USERS recipients gets MESSAGES messages, IN_FLIGHT at once, through
 * the real `addMessage` path (no live connections); per statement of the notifier's
 * transactions, the wall time from sending it to its answer, and per transaction the time
 * from BEGIN to the answer of COMMIT (while its row locks are held); SQLite beside it for the
 * ratio of messages/s.
 * Usage: DATABASE_URL=postgres://… node --import tsx bench/micro/pg-fanout-spans.ts
 *   USERS=n (2000), MESSAGES=n (60), IN_FLIGHT=n (4)
 */
import pg from 'pg';
import { openStore, type Store } from '../../src/store/db.ts';
import { SecretBox } from '../../src/store/secrets.ts';
import { LocalBus } from '../../src/cluster/bus.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { createUser } from '../../src/chat/users.ts';
import { createConversation } from '../../src/chat/conversations.ts';
import { addMessage } from '../../src/chat/messages.ts';
import { createBenchDatabase } from '../lib/database.ts';
import { backendsCpu } from '../lib/pg-cpu.ts';

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('DATABASE_URL=postgres://… is needed');
const USERS = Number(process.env.USERS ?? 2000);
const MESSAGES = Number(process.env.MESSAGES ?? 60);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 4);

/** Milliseconds per kind of statement: its first words. */
const spans = new Map<string, number[]>();
const transactions: number[] = [];
const opened = new WeakMap<object, number>();

function kindOf(text: string): string {
  const words = text.replace(/\s+/g, ' ').trim();
  if (words.startsWith('WITH target')) return 'store message + lock heads';
  if (words.startsWith('WITH feed')) return 'feed rows + outbox rows';
  return words.slice(0, 40).toLowerCase();
}

const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function (this: object, config: unknown, values?: unknown, callback?: unknown) {
  const text = typeof config === 'string' ? config : (config as { text?: string }).text;
  const result = query.call(this, config, values, callback);
  if (typeof text !== 'string' || !(result instanceof Promise)) return result;
  const t0 = performance.now();
  const kind = kindOf(text);
  if (kind === 'begin') opened.set(this, t0);
  return result.then((value: unknown) => {
    const t1 = performance.now();
    (spans.get(kind) ?? spans.set(kind, []).get(kind)!).push(t1 - t0);
    if (kind === 'commit' && opened.has(this)) transactions.push(t1 - opened.get(this)!);
    return value;
  });
} as typeof pg.Client.prototype.query;

function summary(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return `n ${sorted.length}, mean ${(sum / sorted.length).toFixed(2)} ms, p50 ${sorted[sorted.length >> 1].toFixed(2)}, max ${sorted[sorted.length - 1].toFixed(2)}`;
}

async function measure(store: Store, label: string): Promise<number> {
  const notifier = new Notifier(store, new LocalBus());
  const ids: string[] = [];
  for (let i = 0; i < USERS + 1; i++) {
    ids.push((await createUser(store.db, store.secrets, { email: `u${i}@fanout.example`, name: `U${i}` })).userid);
  }
  const [sender, ...recipients] = ids;
  const conversation = await createConversation(notifier, sender, { participantIds: recipients, displayName: 'Spans' });
  const send = async (k: number) => {
    const now = new Date().toISOString().slice(0, 19).replace('T', ' ');
    await addMessage(notifier, { id: sender, name: 'U0' }, conversation.id, {
      ID: `m${k}`,
      Type: 'Message',
      Created: now,
      ValidUntil: now,
      Data: 'AAAA',
    });
  };
  for (let k = 0; k < 8; k++) await send(-1 - k); // warm-up
  spans.clear();
  transactions.length = 0;
  const cpu0 = process.cpuUsage();
  const db0 = store.dialect === 'postgres' ? await backendsCpu(store.db) : 0;
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < MESSAGES) await send(next++);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const database = store.dialect === 'postgres' ? ((await backendsCpu(store.db)) - db0) / MESSAGES / 1000 : 0;
  const rate = (MESSAGES * USERS) / seconds;
  console.log(
    `${label}: ${Math.round(rate)} feed rows/s, ${((seconds * 1000) / MESSAGES).toFixed(1)} ms per message, CPU ${((cpu.user + cpu.system) / MESSAGES / 1000).toFixed(1)} ms per message here + ${database.toFixed(1)} ms in PostgreSQL`,
  );
  for (const [kind, values] of spans) console.log(`  ${kind.padEnd(28)} ${summary(values)}`);
  if (transactions.length) console.log(`  ${'BEGIN to COMMIT answered'.padEnd(28)} ${summary(transactions)}`);
  await notifier.close();
  return rate;
}

const sqliteStore = await openStore({ sqliteFile: ':memory:' });
const sqlite = await measure(sqliteStore, 'SQLite (in memory)');
await sqliteStore.close();
const database = await createBenchDatabase(databaseUrl);
try {
  const pgStore = await openStore({ databaseUrl: database.url, secrets: SecretBox.ephemeral() });
  const postgres = await measure(pgStore, 'PostgreSQL');
  await pgStore.close();
  console.log(`PostgreSQL / SQLite, feed rows/s: ${(postgres / sqlite).toFixed(2)}×`);
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  // KEEP=1 leaves the database for EXPLAIN ANALYZE by hand.
  if (process.env.KEEP) console.log(`kept ${database.url}`);
  else await database.drop();
}
