/**
 * Micro-benchmark (not part of `npm run bench`): which database pages one one-to-one message
 * writes to SQLite's write-ahead log, by table and index (SQLite's dbstat). The log is
 * emptied after the set-up; each message is then added alone through `addMessage`.
 * Usage: node --import tsx bench/micro/wal-pages.ts  (PAIRS=500 MESSAGES=20)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { openStore } from '../../src/store/db.ts';
import { LocalBus } from '../../src/cluster/bus.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { createUser } from '../../src/chat/users.ts';
import { createConversation } from '../../src/chat/conversations.ts';
import { addMessage } from '../../src/chat/messages.ts';

const PAIRS = Number(process.env.PAIRS ?? 500);
const MESSAGES = Number(process.env.MESSAGES ?? 20);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-wal-'));
const file = path.join(dir, 'herald.db');
const store = await openStore({ sqliteFile: file });
const notifier = new Notifier(store, new LocalBus());
const pairs: Array<{ a: { id: string; name: string }; conversation: string }> = [];
for (let i = 0; i < PAIRS; i++) {
  const a = await createUser(store.db, store.secrets, { email: `a${i}@example.org`, name: `A${i}` });
  const b = await createUser(store.db, store.secrets, { email: `b${i}@example.org`, name: `B${i}` });
  const conversation = await createConversation(notifier, a.userid, { participantIds: [b.userid] });
  pairs.push({ a: { id: a.userid, name: `A${i}` }, conversation: conversation.id });
}
// Warm: every conversation has had a message, as in a running node.
for (let i = 0; i < PAIRS; i++)
  await addMessage(notifier, pairs[i].a, pairs[i].conversation, {
    ID: `w${i}`,
    Type: 'Message',
    Created: '',
    ValidUntil: '',
    Data: 'aGk=',
  });

const reader = new SQLite(file);
const owner = new Map<number, string>();
const counts = new Map<string, number>();
let frames = 0;
for (let i = 0; i < MESSAGES; i++) {
  const pair = pairs[(i * 37) % PAIRS];
  // Everything so far copied into the database, and the log started over by the next write.
  reader.pragma('wal_checkpoint(TRUNCATE)');
  await addMessage(notifier, pair.a, pair.conversation, { ID: `m${i}`, Type: 'Message', Created: '', ValidUntil: '', Data: 'aGVsbG8=' });
  const log = fs.readFileSync(`${file}-wal`);
  const pageSize = log.readUInt32BE(8);
  owner.clear();
  for (const row of reader.prepare('SELECT name, pageno FROM dbstat').all() as Array<{ name: string; pageno: number }>)
    owner.set(row.pageno, row.name);
  const seen = new Set<number>();
  for (let offset = 32; offset + 24 + pageSize <= log.length; offset += 24 + pageSize) {
    const page = log.readUInt32BE(offset);
    frames++;
    if (seen.has(page)) continue;
    seen.add(page);
    const name = owner.get(page) ?? (page === 1 ? 'header page' : 'other');
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
}
console.log(`${MESSAGES} messages: ${(frames / MESSAGES).toFixed(1)} log frames each; distinct pages per message by owner:`);
for (const [name, n] of [...counts].sort((x, y) => y[1] - x[1])) console.log(`  ${(n / MESSAGES).toFixed(2)}  ${name}`);
reader.close();
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
