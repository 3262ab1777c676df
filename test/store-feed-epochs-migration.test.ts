import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../src/store/db.ts';
import { migrateToLatest } from '../src/store/migrations.ts';
import { EPOCH_ROWS } from '../src/store/bulk.ts';
import { appendNotifications, feedHead, feedHeads, readFeed } from '../src/notify/feed.ts';
import { deleteUser } from '../src/chat/user-deletion.ts';
import { readHistory } from '../src/api/web3mq/history.ts';
import { TEST_DATABASE_URL, TEST_SECRETS, describeOnPostgres } from './helpers/stores.ts';

/**
 * 0016_feed_by_epoch moves the feed to an index by (epoch, user_key, seq) (SQLite) and adds
 * feed_epochs: the rows written before it must be found after it, and rows appended after
 * it (on SQLite across an epoch's end) must follow them without a gap.
 */
const BEFORE = '0015_feed_heads_by_index';
const USERS = ['u-ann', 'u-ben', 'u-cat'];

async function writeOldRows(db: Kysely<any>): Promise<void> {
  for (const id of USERS) {
    await db
      .insertInto('users')
      .values({ id, email: `${id}@example.org`, name: id, nick: id, apikey_hash: `h-${id}`, apikey_sealed: `s-${id}`, created_at: 1 })
      .execute();
  }
  const users = await db.selectFrom('users').select(['id', 'key']).execute();
  const rows = [];
  for (const user of users) {
    for (const seq of [1, 2, 3]) {
      rows.push({
        user_key: user.key,
        seq,
        type: 'message',
        conversation_id: 'c1',
        sender_id: 'u-ann',
        title: `${seq} from ann to ${user.id}`,
        body: '',
        badge: seq,
        silent: 0,
        data: JSON.stringify({ messageid: `m-${seq}` }),
        status: seq === 1 ? 'read' : null,
        status_at: seq === 1 ? 5 : null,
        created_at: 1000 + seq,
        push_options: null,
      });
    }
  }
  await db.insertInto('notifications').values(rows).execute();
}

/** Appends one Web3MQ notice to every user, in a transaction of its own. */
async function appendOne(store: Store, n: number): Promise<void> {
  await store.db.transaction().execute(async (trx) => {
    await appendNotifications(
      trx,
      USERS.map((userId) => ({
        userId,
        type: 'system.friend_request' as const,
        title: `new ${n}`,
        unread: 1,
        data: { messageid: `n-${n}` },
      })),
      { bulk: store.bulk },
    );
    store.bulk.settled?.(trx, true);
  });
}

async function checkMigrated(store: Store): Promise<void> {
  const db = store.db;
  for (const user of USERS) {
    expect((await readFeed(db, user, 0)).map((n) => [n.seq, n.title, n.badge])).toEqual(
      [1, 2, 3].map((seq) => [seq, `${seq} from ann to ${user}`, seq]),
    );
    expect(await feedHead(db, user)).toEqual({ lastSeq: 3, badge: 3 });
  }
  const statuses = await db
    .selectFrom('notifications')
    .select(['status', 'status_at'])
    .where('seq', '=', 1)
    .where('user_key', '<', 999999)
    .execute();
  expect(statuses).toEqual(USERS.map(() => ({ status: 'read', status_at: 5 })));

  // Appended rows follow on, across an epoch's end on SQLite.
  for (let n = 4; n <= 7; n++) await appendOne(store, n);
  for (const user of USERS) {
    const feed = await readFeed(db, user, 0);
    expect(feed.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(feed.map((x) => x.badge)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect((await readFeed(db, user, 4)).map((x) => x.seq)).toEqual([5, 6, 7]);
    expect((await readFeed(db, user, 2, 2)).map((x) => x.seq)).toEqual([3, 4]);
    expect(await feedHead(db, user)).toEqual({ lastSeq: 7, badge: 7 });
  }
  expect([...(await feedHeads(db, USERS)).values()]).toEqual([7, 7, 7]);
  const history = await readHistory(db, { userId: 'u-ben', page: 1, size: 10 } as any);
  // Web3MQ history: the notices appended after the migration, newest first.
  expect(history.total).toBe(4);
  expect(history.result).toHaveLength(4);

  // A user's deletion takes every row of every epoch.
  const deleted = await deleteUser(db, { publishDisconnect: async () => {} }, 'u-cat');
  expect(deleted.notifications).toBe(7);
  expect(await readFeed(db, 'u-ann', 0)).toHaveLength(7);
}

describe('migration 0016 (feed by epoch) on sqlite', () => {
  it('keeps the feed rows written before it, and rows appended after it follow them', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-migrate-0016-'));
    try {
      const file = path.join(dir, 'herald.db');
      const database = new SQLite(file);
      const old = new Kysely<any>({ dialect: new SqliteDialect({ database }) });
      await migrateToLatest(old, 'sqlite', TEST_SECRETS, undefined, BEFORE);
      await writeOldRows(old);
      await old.destroy();

      // Rows written so far are counted from the feed's last rowid: a row of no user's feed
      // far on makes the second append start the next epoch.
      const raw = new SQLite(file);
      const store = await openStore({ sqliteFile: file, secrets: TEST_SECRETS });
      try {
        await sql`INSERT INTO notifications (rowid, epoch, user_key, seq, type, title, body, badge, silent, data, created_at)
                  VALUES (${EPOCH_ROWS - 3}, 0, 999999, 1, 'message', 'x', '', 0, 0, '{}', 1)`.execute(store.db);
        await checkMigrated(store);
        const epochs = raw.prepare('SELECT DISTINCT epoch FROM notifications ORDER BY epoch').pluck().all();
        expect(epochs).toEqual([0, 1]);
        // Each remaining user's rows 1–4 are in epoch 0, 5–7 in epoch 1.
        expect(raw.prepare('SELECT first_seq, epoch FROM feed_epochs WHERE user_key = 1 ORDER BY first_seq').raw().all()).toEqual([
          [1, 0],
          [5, 1],
        ]);
      } finally {
        raw.close();
        await store.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeOnPostgres('migration 0016 (feed by epoch)', () => {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  afterAll(async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it('keeps the feed rows written before it, and rows appended after it follow them', async () => {
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1, options: `-c search_path=${schema}` });
    const old = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    await migrateToLatest(old, 'postgres', TEST_SECRETS, schema, BEFORE);
    await writeOldRows(old);
    await old.destroy();

    const store = await openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 2, secrets: TEST_SECRETS });
    try {
      await checkMigrated(store);
    } finally {
      await store.close();
    }
  });
});
