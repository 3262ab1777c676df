/**
 * Micro-benchmark (not part of `npm run bench`): what one feed row costs SQLite in the
 * layouts Herald could use, for a 2,000-recipient group message, 4 messages per commit
 * (what group commit gives under the fan-out load), with a feed already holding 100 rows
 * per user. Usage: node --import tsx bench/micro/feed-layout.ts
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import SQLite from 'better-sqlite3';

const USERS = 2000;
const PREFILL_PER_USER = 100;
const MESSAGES = Number(process.env.MESSAGES ?? 100);
const PER_COMMIT = 4;

const COLUMNS = `user_id varchar(64) NOT NULL, seq integer NOT NULL, type varchar(64) NOT NULL,
  conversation_id varchar(200), sender_id varchar(200), title varchar(400) NOT NULL, body text NOT NULL,
  badge integer NOT NULL, silent integer NOT NULL, data text NOT NULL, status varchar(16), status_at integer,
  created_at integer NOT NULL`;

const layouts: Record<string, { ddl: string[]; id: (now: number) => string }> = {
  'before migration 0008: rowid table, PRIMARY KEY id (random UUID) + UNIQUE (user_id, seq)': {
    ddl: [`CREATE TABLE notifications (id varchar(64) PRIMARY KEY, ${COLUMNS}, UNIQUE (user_id, seq))`],
    id: () => randomUUID(),
  },
  'before migration 0008, with time-ordered ids (UUID version 7 layout)': {
    ddl: [`CREATE TABLE notifications (id varchar(64) PRIMARY KEY, ${COLUMNS}, UNIQUE (user_id, seq))`],
    id: timeOrdered,
  },
  'no index on id (floor: what the id index costs)': {
    ddl: [`CREATE TABLE notifications (id varchar(64), ${COLUMNS}, UNIQUE (user_id, seq))`],
    id: timeOrdered,
  },
  'no id column, UNIQUE (user_id, seq) only (the id derived from user and seq)': {
    ddl: [`CREATE TABLE notifications (id varchar(64), ${COLUMNS}, UNIQUE (user_id, seq))`],
    id: () => null as unknown as string,
  },
  'no id column, user key as a short integer in the index (Herald since migration 0008)': {
    ddl: [
      `CREATE TABLE notifications (id varchar(64), ${COLUMNS.replace('user_id varchar(64)', 'user_id integer')}, UNIQUE (user_id, seq))`,
    ],
    id: () => null as unknown as string,
  },
  'user_id text kept in the row, unindexed id kept, UNIQUE (user_key integer, seq)': {
    ddl: [`CREATE TABLE notifications (id varchar(64), user_key integer NOT NULL, ${COLUMNS}, UNIQUE (user_key, seq))`],
    id: timeOrdered,
  },
  'WITHOUT ROWID, PRIMARY KEY (user_id, seq) + UNIQUE id (time-ordered)': {
    ddl: [`CREATE TABLE notifications (id varchar(64) NOT NULL UNIQUE, ${COLUMNS}, PRIMARY KEY (user_id, seq)) WITHOUT ROWID`],
    id: timeOrdered,
  },
};

function timeOrdered(now: number): string {
  const time = now.toString(16).padStart(12, '0');
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${randomUUID().slice(15)}`;
}

const userIds = Array.from({ length: USERS }, (_, i) => `${i.toString(16).padStart(8, '0')}${'ab'.repeat(12)}`);
const userIndex = new Map(userIds.map((u, i) => [u, i + 1]));

function run(name: string, layout: { ddl: string[]; id: (now: number) => string }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-feed-layout-'));
  const db = new SQLite(path.join(dir, 'feed.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('cache_size = -65536');
  for (const statement of layout.ddl) db.exec(statement);
  const keyed = name.includes('user_key');
  const insert = db.prepare(
    keyed
      ? 'INSERT INTO notifications (id, user_key, user_id, seq, type, conversation_id, sender_id, title, body, badge, silent, data, status, status_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)'
      : 'INSERT INTO notifications (id, user_id, seq, type, conversation_id, sender_id, title, body, badge, silent, data, status, status_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)',
  );
  const seqs = new Map(userIds.map((u) => [u, 0]));
  const write = (messages: number) => {
    const now = Date.now();
    for (let m = 0; m < messages; m++) {
      for (const user of userIds) {
        const seq = seqs.get(user)! + 1;
        seqs.set(user, seq);
        const key = name.includes('short integer') ? [userIndex.get(user)] : keyed ? [userIndex.get(user), user] : [user];
        insert.run(
          layout.id(now),
          ...key,
          seq,
          'message',
          '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
          '5d41402abc4b2a76b9719d911017c592',
          `${seq} messages from Bench 0 in Bench group`,
          '',
          seq,
          0,
          `{"messageid":"m-${m}","unread":${seq}}`,
          null,
          null,
          now,
        );
      }
    }
  };
  db.transaction(() => write(PREFILL_PER_USER))();
  db.pragma('wal_checkpoint(TRUNCATE)');
  const started = process.hrtime.bigint();
  for (let done = 0; done < MESSAGES; done += PER_COMMIT) db.transaction(() => write(PER_COMMIT))();
  const perRowUs = Number(process.hrtime.bigint() - started) / 1000 / (MESSAGES * USERS);
  const pages = (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number);
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`${perRowUs.toFixed(2).padStart(6)} µs per row (commit included)  ${(pages / 1024 / 1024).toFixed(0)} MB  ${name}`);
}

for (const [name, layout] of Object.entries(layouts)) run(name, layout);
