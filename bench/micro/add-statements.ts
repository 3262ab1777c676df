/**
 * Micro-benchmark (not part of `npm run bench`): where the SQLite time of one one-to-one
 * message goes, statement by statement, through the real `addMessage` path.
 * Usage: node --import tsx bench/micro/add-statements.ts
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
import { clearStatementTimes, printStatementTimes, timeStatements } from './statement-times.ts';

/** GROUP=N: one group of N users instead of 500 one-to-one pairs. */
const GROUP = Number(process.env.GROUP ?? 0);
const PAIRS = GROUP ? 1 : 500;
const MESSAGES = Number(process.env.MESSAGES ?? (GROUP ? 50 : 5000));
/** EVERY=N: also print the statements of each N messages, to see costs change as the feeds grow. */
const EVERY = Number(process.env.EVERY ?? 0);

timeStatements();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-add-'));
if (process.env.PAGE_SIZE) {
  // A database made beforehand with another page size (fixed once the file is written).
  const made = new SQLite(path.join(dir, 'herald.db'));
  made.pragma(`page_size = ${Number(process.env.PAGE_SIZE)}`);
  made.exec('VACUUM');
  made.close();
}
const store = await openStore({ sqliteFile: process.env.MEMORY ? ':memory:' : path.join(dir, 'herald.db') });
const notifier = new Notifier(store, new LocalBus());
const pairs: Array<{ a: { id: string; name: string }; conversation: string }> = [];
if (GROUP) {
  const members: string[] = [];
  for (let i = 0; i < GROUP; i++)
    members.push((await createUser(store.db, store.secrets, { email: `g${i}@example.org`, name: `G${i}` })).userid);
  const conversation = await createConversation(notifier, members[0], { participantIds: members.slice(1) });
  pairs.push({ a: { id: members[0], name: 'G0' }, conversation: conversation.id });
}
for (let i = 0; i < (GROUP ? 0 : PAIRS); i++) {
  const a = await createUser(store.db, store.secrets, { email: `a${i}@example.org`, name: `A${i}` });
  const b = await createUser(store.db, store.secrets, { email: `b${i}@example.org`, name: `B${i}` });
  const conversation = await createConversation(notifier, a.userid, { participantIds: [b.userid] });
  pairs.push({ a: { id: a.userid, name: `A${i}` }, conversation: conversation.id });
}
clearStatementTimes();
const started = process.hrtime.bigint();
for (let i = 0; i < MESSAGES; i++) {
  const pair = pairs[i % PAIRS];
  await addMessage(notifier, pair.a, pair.conversation, { ID: `m${i}`, Type: 'Message', Created: '', ValidUntil: '', Data: 'aGVsbG8=' });
  if (EVERY && (i + 1) % EVERY === 0) {
    const log = fs.statSync(path.join(dir, 'herald.db-wal'), { throwIfNoEntry: false })?.size ?? 0;
    console.log(`-- messages ${i + 2 - EVERY}–${i + 1} (write-ahead log file ${(log / 1e6).toFixed(1)} MB)`);
    printStatementTimes(EVERY, 'msg', 4);
    clearStatementTimes();
  }
}
const total = Number(process.hrtime.bigint() - started) / MESSAGES / 1000;
console.log(
  `${MESSAGES} messages, ${total.toFixed(1)} µs each in all (one at a time)${GROUP ? `, ${(total / GROUP).toFixed(2)} µs per recipient` : ''}`,
);
printStatementTimes(MESSAGES, 'msg');
await store.close();
fs.rmSync(dir, { recursive: true, force: true });
