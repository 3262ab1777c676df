/**
 * Micro-benchmark (not part of `npm run bench`): what the outbox costs the main thread per
 * push, statement by statement, with the provider taken out: a channel that answers every
 * push at once. Two messages to 1,000 users with 10 iOS devices each (20,000 pushes), as in
 * the push bench. Usage: node --import tsx bench/micro/outbox-path.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import SQLite from 'better-sqlite3';
import { openStore } from '../../src/store/db.ts';
import { LocalBus } from '../../src/cluster/bus.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { createUser } from '../../src/chat/users.ts';
import { startOutbox } from '../../src/notify/outbox.ts';
import { createMetrics } from '../../src/metrics.ts';
import { loadConfig } from '../../src/config.ts';
import type { PushChannel, SendOutcome } from '../../src/channels/channel.ts';
import type { AppContext } from '../../src/context.ts';
import type { NotificationDraft } from '../../src/notify/model.ts';

const USERS = 1000;
const DEVICES = 10;
const MESSAGES = Number(process.env.MESSAGES ?? 2);

const spent = new Map<string, { calls: number; ns: bigint }>();
const prepare = SQLite.prototype.prepare;
SQLite.prototype.prepare = function (this: SQLite.Database, source: string) {
  const statement = prepare.call(this, source) as SQLite.Statement;
  for (const method of ['run', 'all', 'get'] as const) {
    const original = statement[method].bind(statement) as (...args: unknown[]) => unknown;
    (statement as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      const start = process.hrtime.bigint();
      try {
        return original(...args);
      } finally {
        const key = source.replace(/\s+/g, ' ').slice(0, 100);
        const entry = spent.get(key) ?? { calls: 0, ns: 0n };
        entry.calls++;
        entry.ns += process.hrtime.bigint() - start;
        spent.set(key, entry);
      }
    };
  }
  return statement;
} as typeof SQLite.prototype.prepare;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-outbox-'));
const store = await openStore({ sqliteFile: path.join(dir, 'herald.db') });
const notifier = new Notifier(store, new LocalBus());
const userIds: string[] = [];
const now = Date.now();
const devices = [];
for (let u = 0; u < USERS; u++) {
  const { userid } = await createUser(store.db, { email: `p${u}@example.org`, name: `P${u}` });
  userIds.push(userid);
  for (let d = 0; d < DEVICES; d++) {
    devices.push({
      station: `${userid.slice(0, 20)}-${d}`,
      user_id: userid,
      platform: 'ios',
      udp_secret: null,
      push_provider: 'apns',
      push_token: Buffer.alloc(32, u * DEVICES + d).toString('hex'),
      push_keys: null,
      push_disabled_at: null,
      push_disabled_reason: null,
      acked_seq: 0,
      delivered_seq: 0,
      last_seen_at: now,
      created_at: now,
    });
  }
}
for (let i = 0; i < devices.length; i += 500) await store.db.insertInto('devices').values(devices.slice(i, i + 500)).execute();

let answered = 0;
const DELIVERED: SendOutcome = { kind: 'delivered' };
const channel: PushChannel = {
  provider: 'apns',
  send: async () => DELIVERED,
  sendWith(_token, _notification, context, done) {
    setImmediate(() => {
      answered++;
      done(DELIVERED, context);
    });
  },
  close: async () => {},
};
const config = loadConfig({ HERALD_DATA_DIR: dir });
const ctx = { config, store, notifier, log: pino({ level: 'silent' }), metrics: createMetrics(new Registry()) } as unknown as AppContext;
const outbox = await startOutbox(ctx, { channels: [channel] });
notifier.onCommitted(() => outbox.kick());

const drafts = (i: number): NotificationDraft[] =>
  userIds.map((userId) => ({ userId, type: 'message', conversationId: 'c1', senderId: null, title: `${i} messages from Alice`, unread: 1 }));

async function run(label: string) {
  spent.clear();
  answered = 0;
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < MESSAGES; i++) await notifier.transact((_trx, emit) => emit(drafts(i)));
  const total = MESSAGES * USERS * DEVICES;
  while (answered < total) await new Promise((resolve) => setTimeout(resolve, 5));
  // Outcomes are written about every 15 ms: let the last ones land.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const used = process.cpuUsage(cpu);
  const wall = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`${label}: ${total} pushes, ${((used.user + used.system) / total).toFixed(1)} µs CPU per push (process), ${wall.toFixed(0)} ms`);
  for (const [sqlText, { calls, ns }] of [...spent].sort((x, y) => Number(y[1].ns - x[1].ns)).slice(0, 10)) {
    console.log(`${(Number(ns) / total / 1000).toFixed(2).padStart(7)} µs/push  ${String(calls).padStart(6)} calls  ${sqlText}`);
  }
}

await run('warm-up');
await run('measured');
await outbox.close();
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
