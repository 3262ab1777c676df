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
import { feedHead, readFeed } from '../src/notify/feed.ts';
import { notificationId } from '../src/model/notification.ts';
import { TEST_DATABASE_URL, TEST_SECRETS, describeOnPostgres } from './helpers/stores.ts';

/**
 * 0008_feed_by_user_key rebuilds the feed and the outbox of a running installation: every
 * feed row and outbox row written before it must be there after it, found the new way.
 */
const BEFORE = '0007_pending_deliveries_only';
const USERS = ['u-ann', 'u-ben', 'u-cat'];

/** Feed and outbox rows in the layout before the migration: text ids, keyed by user id. */
async function writeOldRows(db: Kysely<any>): Promise<void> {
  for (const [i, id] of USERS.entries()) {
    await db
      .insertInto('users')
      .values({ id, email: `${id}@example.org`, name: id, nick: id, apikey: `k-${id}`, last_seq: 2, unread_total: i, created_at: 1 })
      .execute();
  }
  const rows = [];
  for (const user of USERS) {
    for (const seq of [1, 2]) {
      rows.push({
        id: `old-${user}-${seq}`,
        user_id: user,
        seq,
        type: 'message',
        conversation_id: 'c1',
        sender_id: 'u-ann',
        title: `${seq} messages from ann to ${user}`,
        body: '',
        badge: seq,
        silent: 0,
        data: JSON.stringify({ messageid: `m-${seq}` }),
        status: seq === 1 ? 'read' : null,
        status_at: seq === 1 ? 5 : null,
        created_at: 1000 + seq,
      });
    }
  }
  await db.insertInto('notifications').values(rows).execute();
  const delivery = (notificationId: string, userId: string, state: string) => ({
    notification_id: notificationId,
    user_id: userId,
    station: `s-${userId}`,
    provider: 'apns',
    state,
    attempts: 0,
    next_attempt_at: 10,
    lease_until: null,
    lease_owner: null,
    expires_at: 99_999_999_999_999,
    last_error: null,
    created_at: 10,
    updated_at: 10,
  });
  await db
    .insertInto('deliveries')
    .values([
      delivery('old-u-ben-2', 'u-ben', 'pending'),
      delivery('old-u-cat-1', 'u-cat', 'delivered'),
      delivery('old-u-cat-2', 'u-cat', 'pending'),
    ])
    .execute();
}

async function checkMigrated(store: Store): Promise<void> {
  const db = store.db;
  const users = await db.selectFrom('users').select(['id', 'key']).orderBy('id').execute();
  expect(users.map((u) => u.id)).toEqual(USERS);
  const keys = users.map((u) => u.key);
  expect(new Set(keys).size).toBe(USERS.length);
  for (const key of keys) expect(key).toBeGreaterThan(0);
  const keyOf = new Map(users.map((u) => [u.id, u.key]));

  // Every feed row is there, under its user's key, unchanged.
  for (const user of USERS) {
    const feed = await readFeed(db, user, 0);
    expect(feed.map((n) => [n.id, n.seq, n.title, n.badge, n.data])).toEqual(
      [1, 2].map((seq) => [
        notificationId(keyOf.get(user)!, seq),
        seq,
        `${seq} messages from ann to ${user}`,
        seq,
        { messageid: `m-${seq}` },
      ]),
    );
  }
  // Where each feed stands is read from its newest row.
  for (const user of USERS) expect(await feedHead(db, user)).toEqual({ lastSeq: 2, badge: 2 });
  const statuses = await db.selectFrom('notifications').select(['status', 'status_at']).where('seq', '=', 1).execute();
  expect(statuses).toEqual(USERS.map(() => ({ status: 'read', status_at: 5 })));

  // Outbox rows keep their ids and states and now name their notification the new way.
  const deliveries = await db.selectFrom('deliveries').select(['id', 'notification_id', 'state']).orderBy('id').execute();
  expect(deliveries).toEqual([
    { id: 1, notification_id: notificationId(keyOf.get('u-ben')!, 2), state: 'pending' },
    { id: 2, notification_id: notificationId(keyOf.get('u-cat')!, 1), state: 'delivered' },
    { id: 3, notification_id: notificationId(keyOf.get('u-cat')!, 2), state: 'pending' },
  ]);

  // A user made afterwards gets a key of its own, above every key handed out before.
  await db
    .insertInto('users')
    .values({
      id: 'u-dan',
      email: 'dan@example.org',
      name: 'dan',
      nick: 'dan',
      apikey_hash: 'h-dan',
      apikey_sealed: 's-dan',
      created_at: 2,
    } as any)
    .execute();
  const dan = await db.selectFrom('users').select('key').where('id', '=', 'u-dan').executeTakeFirstOrThrow();
  expect(dan.key).toBeGreaterThan(Math.max(...keys));
  // New outbox rows are no longer tied to the feed by a foreign key, and take the next id.
  await db
    .insertInto('deliveries')
    .values({
      notification_id: 'gone',
      user_id: 'u-dan',
      station: 's',
      provider: 'apns',
      state: 'pending',
      attempts: 0,
      next_attempt_at: 1,
      lease_until: null,
      lease_owner: null,
      expires_at: 2,
      last_error: null,
      created_at: 1,
      updated_at: 1,
    })
    .execute();
  expect((await db.selectFrom('deliveries').select('id').where('notification_id', '=', 'gone').executeTakeFirstOrThrow()).id).toBe(4);
}

describe('migration 0008 (feed keyed by user key) on sqlite', () => {
  it('keeps every feed row and outbox row of a database made before it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-migrate-0008-'));
    try {
      const file = path.join(dir, 'herald.db');
      const database = new SQLite(file);
      database.pragma('foreign_keys = ON');
      const old = new Kysely<any>({ dialect: new SqliteDialect({ database }) });
      await migrateToLatest(old, 'sqlite', TEST_SECRETS, undefined, BEFORE);
      await writeOldRows(old);
      await old.destroy();

      const store = await openStore({ sqliteFile: file });
      try {
        await checkMigrated(store);
        // A user's key is never handed out again, even after the user with the highest one is gone.
        await sql`DELETE FROM users WHERE id = 'u-dan'`.execute(store.db);
        await store.db
          .insertInto('users')
          .values({
            id: 'u-eve',
            email: 'eve@example.org',
            name: 'eve',
            nick: 'eve',
            apikey_hash: 'h-eve',
            apikey_sealed: 's-eve',
            created_at: 3,
          } as any)
          .execute();
        const keys = await store.db.selectFrom('users').select(['id', 'key']).where('id', '=', 'u-eve').executeTakeFirstOrThrow();
        expect(keys.key).toBe(USERS.length + 2);
      } finally {
        await store.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeOnPostgres('migration 0008 (feed keyed by user key)', () => {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  afterAll(async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it('keeps every feed row and outbox row of a database made before it', async () => {
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
