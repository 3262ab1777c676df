/**
 * Micro-benchmark (not part of `npm run bench`): what the Redis bus costs the nodes per
 * notification of a group fan-out. Node A publishes messages of N notifications (one per
 * user); node B holds the live connections of every other user; both are RedisBus instances
 * of this process on the Redis at REDIS_URL (default redis://127.0.0.1:6379). Prints the CPU
 * time of this process per notification from publish until B has heard every message: A's
 * publishing, B's reading, and A's handling of its own messages coming back.
 * Usage: node --import tsx bench/micro/bus-receive.ts  (N=2000 MESSAGES=200 ROUNDS=5)
 */
import { randomUUID } from 'node:crypto';
import { RedisBus } from '../../src/cluster/redis-bus.ts';
import type { Notification } from '../../src/model/notification.ts';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const N = Number(process.env.N ?? 2000);
const MESSAGES = Number(process.env.MESSAGES ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 5);

const run = randomUUID().slice(0, 8);
const users = Array.from({ length: N }, (_, i) => `user-${run}-${i}`);
const held = new Set(users.filter((_, i) => i % 2 === 1));
const a = await RedisBus.connect(url);
const b = await RedisBus.connect(url);
let heard = 0;
let lastSeen = '';
const marker = `marker-${run}`;
a.subscribe(() => {});
b.subscribe(
  (list) => {
    heard += list.length;
    for (const n of list) if (n.userId === marker) lastSeen = n.title;
  },
  (userId) => held.has(userId) || userId === marker,
);

function message(round: number, m: number): Notification[] {
  const list = users.map((userId, i): Notification => ({
    id: randomUUID(),
    userId,
    seq: round * MESSAGES + m + 1,
    type: 'message',
    conversationId: `conv-${run}`,
    senderId: 'alice',
    title: '1 message from Alice in Team',
    body: '',
    badge: i % 50,
    silent: false,
    data: { conversationid: `conv-${run}`, messageid: `m-${m}` },
    createdAt: Date.now(),
  }));
  list.push({ ...list[0], userId: marker, title: `${round}-${m}` });
  return list;
}

for (let round = 0; round < ROUNDS; round++) {
  const messages = Array.from({ length: MESSAGES }, (_, m) => message(round, m));
  const before = process.cpuUsage();
  const started = performance.now();
  // A few messages in flight at most: Redis cuts off a subscriber that falls 32 MB behind.
  for (let m = 0; m < MESSAGES; m++) {
    await a.publish(messages[m]);
    if (m % 4 === 3 || m === MESSAGES - 1) {
      const last = `${round}-${m}`;
      while (lastSeen !== last) await new Promise((resolve) => setImmediate(resolve));
    }
  }
  const cpu = process.cpuUsage(before);
  const perNotification = (cpu.user + cpu.system) / (MESSAGES * N);
  console.log(
    `round ${round + 1}: ${perNotification.toFixed(2)} µs CPU per notification, ${((performance.now() - started) / MESSAGES).toFixed(1)} ms per message; B handed ${heard} so far`,
  );
}
await a.close();
await b.close();
