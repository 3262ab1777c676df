/**
 * Micro-benchmark (not part of `npm run bench`): the server's CPU time per delivery of a group
 * message up to the sockets, in one process: the real `addMessage` (SQLite file, notifier,
 * feed, statements) and the hub handing each recipient's frame to a connection that makes its
 * whole frame bytes (live/frame-bytes.ts) and writes nothing. Without sockets and clients it
 * moves far less with a busy machine than the fan-out bench; run it alternately for two trees.
 * Usage: node --import tsx bench/micro/fanout-path.ts  (GROUP=2000 MESSAGES=50 IN_FLIGHT=4 ROUNDS=6)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from '../../src/store/db.ts';
import { LocalBus } from '../../src/cluster/bus.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { Hub } from '../../src/notify/hub.ts';
import { createUser } from '../../src/chat/users.ts';
import { createConversation } from '../../src/chat/conversations.ts';
import { addMessage } from '../../src/chat/messages.ts';
import { frameBytes } from '../../src/channels/live/frame-bytes.ts';
import type { LiveConnection } from '../../src/model/channel.ts';

const GROUP = Number(process.env.GROUP ?? 2000);
const MESSAGES = Number(process.env.MESSAGES ?? 50);
const IN_FLIGHT = Number(process.env.IN_FLIGHT ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 6);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-fanout-path-'));
const store = await openStore({ sqliteFile: path.join(dir, 'herald.db') });
const bus = new LocalBus();
const hub = new Hub();
bus.subscribe((notifications) => hub.dispatch(notifications));
const notifier = new Notifier(store, bus);

let delivered = 0;
let bytes = 0;
const members: string[] = [];
for (let i = 0; i < GROUP + 1; i++) {
  members.push((await createUser(store.db, store.secrets, { email: `f${i}@example.org`, name: `F${i}` })).userid);
}
for (const userId of members.slice(1)) {
  const connection: LiveConnection = {
    userId,
    station: userId,
    channel: 'ws',
    deliveredSeq: 0,
    deliver(_notification, frame) {
      delivered++;
      bytes += frameBytes(frame).bytes.length;
    },
  };
  hub.add(connection);
}
const conversation = await createConversation(notifier, members[0], { participantIds: members.slice(1), displayName: 'Bench group' });
const sender = { id: members[0], name: 'F0' };

let sent = 0;
async function round(): Promise<number> {
  delivered = 0;
  bytes = 0;
  const before = process.cpuUsage();
  let next = 0;
  const lane = async () => {
    while (next < MESSAGES) {
      next++;
      const id = `m${sent++}`;
      await addMessage(notifier, sender, conversation.id, { ID: id, Type: 'Message', Created: '', ValidUntil: '', Data: 'aGVsbG8=' });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  const cpu = process.cpuUsage(before);
  return (cpu.user + cpu.system) / delivered;
}

const perDelivery: number[] = [];
for (let r = 0; r < ROUNDS; r++) perDelivery.push(await round());
const measured = perDelivery.slice(1).sort((a, b) => a - b);
console.log(
  `CPU per delivery, rounds 2-${ROUNDS}: ${perDelivery
    .slice(1)
    .map((v) => v.toFixed(2))
    .join(', ')} µs; median ${measured[Math.floor(measured.length / 2)].toFixed(2)} µs (${Math.round(bytes / delivered)} B frames)`,
);
await notifier.close();
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
