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
import { openStore } from '../../src/store/db.ts';
import { LocalBus } from '../../src/cluster/bus.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { createUser } from '../../src/chat/users.ts';
import { bindStation, registerDevice } from '../../src/chat/devices.ts';
import { startOutbox } from '../../src/notify/outbox.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { PushChannel, SendOutcome } from '../../src/model/channel.ts';
import { SqlDeliveryStore } from '../../src/store/deliveries.ts';
import type { NotificationDraft } from '../../src/model/notification.ts';
import { clearStatementTimes, printStatementTimes, timeStatements } from './statement-times.ts';

const USERS = 1000;
const DEVICES = 10;
const MESSAGES = Number(process.env.MESSAGES ?? 2);

timeStatements();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-outbox-'));
const store = await openStore({ sqliteFile: path.join(dir, 'herald.db') });
const notifier = new Notifier(store, new LocalBus());
const userIds: string[] = [];
for (let u = 0; u < USERS; u++) {
  const { userid } = await createUser(store.db, store.secrets, { email: `p${u}@example.org`, name: `P${u}` });
  userIds.push(userid);
  for (let d = 0; d < DEVICES; d++) {
    const station = `${userid.slice(0, 20)}-${d}`;
    await bindStation(store.db, store.secrets, station, userid, 'ios');
    await registerDevice(store.db, station, userid, { platform: 'ios', pushToken: (u * DEVICES + d).toString(16).padStart(64, '0') });
  }
}

let answered = 0;
const DELIVERED: SendOutcome = { kind: 'delivered' };
const channel: PushChannel = {
  provider: 'apns',
  send(_target, _notification, context, done) {
    setImmediate(() => {
      answered++;
      done(DELIVERED, context);
    });
  },
  close: async () => {},
};
const outbox = await startOutbox({
  deliveries: new SqlDeliveryStore(store.db, store.dialect),
  channels: [channel],
  log: pino({ level: 'silent' }),
  pushes: createMetrics(new Registry()).pushes,
});
// REMEMBER=0: the outbox reads every notification's feed row back, as for another node's rows.
const remember = process.env.REMEMBER !== '0';
// HERALD_NO_LEASED_PUSH_WRITES=1: every row is claimed (see src/notify/outbox.ts).
notifier.leasePushesTo(() => outbox.lease());
notifier.onCommitted((notifications, _queued, _held, leased) => {
  if (remember) outbox.remember(notifications);
  outbox.take(leased);
  outbox.kick();
});

const drafts = (i: number): NotificationDraft[] =>
  userIds.map((userId) => ({
    userId,
    type: 'message',
    conversationId: 'c1',
    senderId: null,
    title: `${i} messages from Alice`,
    unread: 1,
  }));

async function run(label: string) {
  clearStatementTimes();
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
  console.log(
    `${label}: ${total} pushes, ${((used.user + used.system) / total).toFixed(1)} µs CPU per push (process), ${wall.toFixed(0)} ms`,
  );
  printStatementTimes(total, 'push', 10);
}

await run('warm-up');
await run('measured');
await outbox.close();
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
