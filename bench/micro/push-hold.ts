/**
 * Micro-benchmark (not part of `npm run bench`): what the presence-aware hold costs the one
 * statement that queues a message's pushes (`queuePushes`), for a message to 2,000
 * recipients with an iPhone and a desktop each. Variants, interleaved round by round: hold
 * off; on with no desktop in use; on with a tenth in use; on with every desktop in use.
 * Usage: node --import tsx bench/micro/push-hold.ts (DATABASE_URL=postgres://… for PostgreSQL)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SecretBox } from '../../src/store/secrets.ts';
import { openStore } from '../../src/store/db.ts';
import { createUser } from '../../src/chat/users.ts';
import { bindStation, registerDevice } from '../../src/chat/devices.ts';
import { notificationId, type Notification } from '../../src/model/notification.ts';
import type { PushHold } from '../../src/store/bulk.ts';

const RECIPIENTS = Number(process.env.RECIPIENTS ?? 2000);
const ROUNDS = Number(process.env.ROUNDS ?? 30);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-hold-'));
const databaseUrl = process.env.DATABASE_URL;
const schema = `bench_hold_${process.pid}`;
const store = await openStore(
  databaseUrl ? { databaseUrl, pgSchema: schema, secrets: SecretBox.ephemeral() } : { sqliteFile: path.join(dir, 'herald.db') },
);
const userIds: string[] = [];
const desktops: string[] = [];
for (let u = 0; u < RECIPIENTS; u++) {
  const { userid } = await createUser(store.db, store.secrets, { email: `h${u}@example.org`, name: `H${u}` });
  userIds.push(userid);
  const phone = `${u.toString(16).padStart(8, '0')}${'a'.repeat(24)}`;
  await bindStation(store.db, store.secrets, phone, userid, 'ios');
  await registerDevice(store.db, phone, userid, { platform: 'ios', pushToken: u.toString(16).padStart(64, '0') });
  const desktop = `${u.toString(16).padStart(8, '0')}${'d'.repeat(24)}`;
  await bindStation(store.db, store.secrets, desktop, userid, 'windows');
  desktops.push(desktop);
}

/** Marks this share of the desktops in use now, the others idle. */
async function inUse(share: number): Promise<void> {
  const active = desktops.slice(0, Math.round(desktops.length * share));
  await store.db.updateTable('devices').set({ active_at: null }).where('platform', '=', 'windows').execute();
  if (active.length > 0) await store.db.updateTable('devices').set({ active_at: Date.now() }).where('station', 'in', active).execute();
}

let seq = 0;
function message(): Notification[] {
  seq++;
  return userIds.map((userId, i) => ({
    id: notificationId(i + 1, seq),
    userId,
    seq,
    type: 'message',
    conversationId: 'c1',
    senderId: null,
    title: '1 message from Alice',
    body: '',
    badge: 1,
    silent: false,
    data: {},
    createdAt: Date.now(),
  }));
}

const variants: Array<{ name: string; share: number; hold: boolean }> = [
  { name: 'hold off', share: 0, hold: false },
  { name: 'hold on, nobody in use', share: 0, hold: true },
  { name: 'hold on, 10 % in use', share: 0.1, hold: true },
  { name: 'hold on, all in use', share: 1, hold: true },
];
const times = new Map<string, number[]>(variants.map((v) => [v.name, []]));
let check = '';
for (let round = -2; round < ROUNDS; round++) {
  for (const variant of variants) {
    await inUse(variant.share);
    const notifications = message();
    const now = Date.now();
    const hold: PushHold | undefined = variant.hold ? { activeAfter: now - 30_000, until: now + 10_000 } : undefined;
    const trx = await store.db.startTransaction().execute();
    const started = process.hrtime.bigint();
    const queued = await store.bulk.queuePushes(trx, notifications, now, now + 86_400_000, hold);
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    await trx.commit().execute();
    if (round >= 0) times.get(variant.name)!.push(elapsed);
    if (round === 0) check += ` ${variant.name}: ${queued.queued} queued, ${queued.held} held;`;
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(`${store.dialect}, ${RECIPIENTS} recipients (an iPhone and a desktop each), ${ROUNDS} rounds, median of queuePushes:`);
for (const variant of variants) {
  const values = times.get(variant.name)!;
  console.log(`  ${variant.name.padEnd(24)} ${median(values).toFixed(2)} ms (min ${Math.min(...values).toFixed(2)})`);
}
console.log(`rows:${check}`);
if (databaseUrl) await store.db.schema.dropSchema(schema).cascade().execute();
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
