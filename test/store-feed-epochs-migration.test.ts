import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import SQLite from 'better-sqlite3';
import { CompiledQuery, Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../src/store/db.ts';
import { migrateToLatest } from '../src/store/migrations.ts';
import { EPOCH_ROWS } from '../src/store/bulk.ts';
import { appendNotifications, feedEpochsAfter, feedHead, feedHeads, headEpoch, readFeed, userKeyOf } from '../src/notify/feed.ts';
import { SqlDeliveryStore } from '../src/store/deliveries.ts';
import { deleteUser } from '../src/chat/user-deletion.ts';
import { readHistory } from '../src/api/web3mq/history.ts';
import { TEST_DATABASE_URL, TEST_SECRETS, describeOnPostgres } from './helpers/stores.ts';
import type { NotificationDraft } from '../src/model/notification.ts';

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

/** The `n`th Web3MQ notice, one for every user. */
function notices(n: number): NotificationDraft[] {
  return USERS.map((userId) => ({ userId, type: 'system.friend_request', title: `new ${n}`, unread: 1, data: { messageid: `n-${n}` } }));
}

/** Appends one Web3MQ notice to every user, in a transaction of its own. */
async function appendOne(store: Store, n: number): Promise<void> {
  await store.db.transaction().execute(async (trx) => {
    await appendNotifications(trx, notices(n), { bulk: store.bulk });
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

/** A schema name of this test's own, dropped with everything in it after the block's tests. */
function schemaDroppedAfterAll(): string {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  afterAll(async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });
  return schema;
}

describeOnPostgres('migration 0016 (feed by epoch)', () => {
  const schema = schemaDroppedAfterAll();

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

/**
 * 0018_feed_epoch_clock: PostgreSQL's feed by (epoch, user_key, seq), its epochs from the
 * clock every node shares. Two stores on one schema are two nodes; the clock is moved close
 * to an epoch's end, and their writes cross it, one after the other and at the same time.
 */
describeOnPostgres('migration 0018 (a shared epoch clock)', () => {
  const schema = schemaDroppedAfterAll();

  /** Every row of a user's feed is in the epoch feed_epochs gives its seq, and the epochs never go back. */
  async function checkEpochs(store: Store, userKey: number, lastSeq: number): Promise<void> {
    const marks = (
      await sql<{ first_seq: number; epoch: number }>`SELECT first_seq, epoch FROM feed_epochs WHERE user_key = ${userKey}
        ORDER BY first_seq`.execute(store.db)
    ).rows;
    const rows = (
      await sql<{ seq: number; epoch: number }>`SELECT seq, epoch FROM notifications WHERE user_key = ${userKey} ORDER BY seq`.execute(
        store.db,
      )
    ).rows;
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
    for (let i = 1; i < marks.length; i++) expect(marks[i].epoch).toBeGreaterThanOrEqual(marks[i - 1].epoch);
    for (const row of rows) expect(row.epoch).toBe(marks.filter((m) => m.first_seq <= row.seq).at(-1)!.epoch);
    // The outbox finds each row by its user key and seq.
    const found = await new SqlDeliveryStore(store.db, 'postgres').feedRows(rows.map((r) => [userKey, r.seq]));
    expect(found.map((r) => r.seq).sort((a, b) => a - b)).toEqual(rows.map((r) => r.seq));
  }

  /**
   * Appends to every user from one node in a transaction held open until `release` resolves;
   * `written` is told the backend's pid once the rows are in.
   */
  async function appendHeld(store: Store, n: number, written: (pid: number) => void, release: Promise<void>): Promise<void> {
    await store.db.transaction().execute(async (trx) => {
      await appendNotifications(trx, notices(n), { bulk: store.bulk });
      written((await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(trx)).rows[0].pid);
      await release;
    });
  }

  it('puts rows written by two nodes across an epoch end where every reader finds them once', async () => {
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1, options: `-c search_path=${schema}` });
    const old = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    await migrateToLatest(old, 'postgres', TEST_SECRETS, schema, '0017_feed_heads_found_once');
    await writeOldRows(old);
    await old.destroy();

    const a = await openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 3, secrets: TEST_SECRETS });
    const b = await openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 3, secrets: TEST_SECRETS });
    try {
      const keys = new Map(
        (await a.db.selectFrom('users').select(['id', 'key']).execute()).map((u) => [u.id as string, Number(u.key)] as const),
      );
      // Three values left in epoch 1: node A's append takes them, node B's starts epoch 2.
      await sql`SELECT setval('herald_feed_clock', ${2 * EPOCH_ROWS - 4})`.execute(a.db);
      await appendOne(a, 4);
      await appendOne(b, 5);
      for (const user of USERS) {
        expect((await readFeed(b.db, user, 0)).map((x) => [x.seq, x.badge])).toEqual([1, 2, 3, 4, 5].map((s) => [s, s]));
        expect(await feedHead(a.db, user)).toEqual({ lastSeq: 5, badge: 5 });
        expect(
          (
            await sql<{ first_seq: number; epoch: number }>`SELECT first_seq, epoch FROM feed_epochs WHERE user_key = ${keys.get(user)}
            ORDER BY first_seq`.execute(a.db)
          ).rows,
        ).toEqual([
          { first_seq: 1, epoch: 0 },
          { first_seq: 4, epoch: 1 },
          { first_seq: 5, epoch: 2 },
        ]);
      }

      // Node A holds the users' feeds in an open transaction, its rows in epoch 2; meanwhile
      // node B's writes to others take the clock to epoch 3, and B's own append to the same
      // users waits for A. B's rows must follow A's, in epoch 3.
      await (a.db as unknown as Kysely<any>)
        .insertInto('users')
        .values({
          id: 'u-dan',
          email: 'u-dan@example.org',
          name: 'dan',
          nick: 'dan',
          apikey_hash: 'h-dan',
          apikey_sealed: 's-dan',
          created_at: 1,
        })
        .execute();
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let written!: (pid: number) => void;
      const holder = new Promise<number>((resolve) => (written = resolve));
      const held = appendHeld(a, 6, written, released);
      const pid = await holder;
      await sql`SELECT setval('herald_feed_clock', ${3 * EPOCH_ROWS - 1})`.execute(b.db);
      await b.db
        .transaction()
        .execute((trx) =>
          appendNotifications(trx, [{ userId: 'u-dan', type: 'system.friend_request', title: 'dan', unread: 1 }], { bulk: b.bulk }),
        );
      const waiting = appendOne(b, 7);
      await waitFor(async () => (await waitingFor(a, pid)) > 0, 'node B to wait for the feeds');
      release();
      await Promise.all([held, waiting]);

      // Both nodes at once, many times over, across the next epoch's end.
      await sql`SELECT setval('herald_feed_clock', ${4 * EPOCH_ROWS - 10})`.execute(a.db);
      const burst = [];
      for (let n = 8; n <= 20; n++) burst.push(appendOne(n % 2 === 0 ? a : b, n));
      await Promise.all(burst);

      for (const user of USERS) {
        const key = keys.get(user)!;
        await checkEpochs(a, key, 20);
        const feed = await readFeed(b.db, user, 0);
        expect(feed.map((x) => x.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        expect(feed.map((x) => x.badge)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        expect(feed.slice(5, 7).map((x) => x.title)).toEqual(['new 6', 'new 7']);
        // Resuming from anywhere reads exactly the rest, a page at a time.
        for (const after of [0, 3, 4, 5, 6, 7, 12, 19, 20]) {
          expect((await readFeed(a.db, user, after)).map((x) => x.seq)).toEqual(
            Array.from({ length: 20 - after }, (_, i) => after + i + 1),
          );
          expect((await readFeed(b.db, user, after, 2)).map((x) => x.seq)).toEqual([after + 1, after + 2].filter((s) => s <= 20));
        }
        expect(await feedHead(b.db, user)).toEqual({ lastSeq: 20, badge: 20 });
      }
      const epochsOf = async (user: string) =>
        (
          await sql<{ epoch: number }>`SELECT DISTINCT epoch FROM notifications WHERE user_key = ${keys.get(user)} ORDER BY epoch`.execute(
            a.db,
          )
        ).rows.map((r) => Number(r.epoch));
      expect(await epochsOf('u-ann')).toEqual([0, 1, 2, 3, 4]);
      expect([...(await feedHeads(a.db, [...USERS, 'u-dan'])).entries()].sort()).toEqual([
        ['u-ann', 20],
        ['u-ben', 20],
        ['u-cat', 20],
        ['u-dan', 1],
      ]);
      const history = await readHistory(b.db, { userId: 'u-ben', page: 1, size: 50 } as any);
      expect(history.total).toBe(17);

      // A user's deletion takes every row of every epoch, and nothing of the others'.
      const deleted = await deleteUser(b.db, { publishDisconnect: async () => {} }, 'u-cat');
      expect(deleted.notifications).toBe(20);
      expect(await sql`SELECT 1 FROM notifications WHERE user_key = ${keys.get('u-cat')}`.execute(a.db)).toMatchObject({ rows: [] });
      expect(await sql`SELECT 1 FROM feed_epochs WHERE user_key = ${keys.get('u-cat')}`.execute(a.db)).toMatchObject({ rows: [] });
      expect(await readFeed(a.db, 'u-ann', 0)).toHaveLength(20);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('has its readers seek the (epoch, user_key, seq) index', async () => {
    const store = await openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 1, secrets: TEST_SECRETS });
    try {
      const plan = async (query: { compile(): { sql: string; parameters: readonly unknown[] } }) => {
        const { sql: text, parameters } = query.compile();
        const rows = await store.db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`EXPLAIN ${text}`, [...parameters]));
        return rows.rows.map((r) => r['QUERY PLAN']).join('\n');
      };
      // Planned as on a table of many rows: a small table is read whole whatever its indexes.
      await sql`SET enable_seqscan = off`.execute(store.db);
      const read = store.db
        .selectFrom('notifications')
        .selectAll()
        .where(feedEpochsAfter(userKeyOf('u-ann'), 4))
        .where('user_key', '=', userKeyOf('u-ann'))
        .where('seq', '>', 4)
        .orderBy('seq')
        .limit(50);
      const head = store.db
        .selectFrom('notifications')
        .select(['seq', 'badge'])
        .where(sql<boolean>`epoch = ${headEpoch(userKeyOf('u-ann'))}`)
        .where('user_key', '=', userKeyOf('u-ann'))
        .orderBy('seq', 'desc')
        .limit(1);
      for (const query of [read, head]) {
        const text = await plan(query);
        expect(text).toMatch(/Index Scan (Backward )?using notifications_epoch_user_seq on notifications/);
        expect(text).not.toMatch(/Seq Scan on notifications/);
      }
    } finally {
      await store.close();
    }
  });
});

/** Backends waiting for a lock that the backend `pid` holds. */
async function waitingFor(store: Store, pid: number): Promise<number> {
  const rows = await sql<{ n: number }>`SELECT count(*)::integer AS n FROM pg_stat_activity
    WHERE ${pid}::integer = ANY(pg_blocking_pids(pid))`.execute(store.db);
  return rows.rows[0].n;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
