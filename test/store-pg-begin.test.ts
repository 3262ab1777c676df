import { afterAll, beforeAll, expect, it } from 'vitest';
import { CompiledQuery, sql } from 'kysely';
import pg from 'pg';
import type { Store } from '../src/store/db.ts';
import { preparedOnPostgres } from '../src/store/statement.ts';
import { describeOnPostgres, POSTGRES } from './helpers/stores.ts';

/** A transaction's BEGIN sent together with its first statement (src/store/db.ts). */
describeOnPostgres('BEGIN with the first statement', () => {
  let store: Store;

  beforeAll(async () => {
    store = await POSTGRES!.open();
    await sql`CREATE TABLE begin_probe (n integer PRIMARY KEY)`.execute(store.db);
  });
  afterAll(async () => store?.close());

  const count = async () => (await sql<{ n: number }>`SELECT count(*)::integer AS n FROM begin_probe`.execute(store.db)).rows[0].n;

  it('runs the first statement inside the transaction: a rollback undoes it', async () => {
    const trx = await store.db.startTransaction().execute();
    const first = await sql<{ id: string }>`INSERT INTO begin_probe VALUES (${1}) RETURNING txid_current()::text AS id`.execute(trx);
    const second = await sql<{ id: string }>`SELECT txid_current()::text AS id, ${2}::integer AS n`.execute(trx);
    expect(second.rows[0].id).toBe(first.rows[0].id);
    await trx.rollback().execute();
    expect(await count()).toBe(0);
  });

  it('waits for one answer less: BEGIN is answered together with the first statement', async () => {
    // Every answer of the server ends with ReadyForQuery: count them on all connections.
    let answers = 0;
    const connection = pg.Connection.prototype as unknown as { emit(event: string, ...args: unknown[]): boolean };
    const emit = connection.emit;
    connection.emit = function (this: unknown, event: string, ...args: unknown[]) {
      if (event === 'readyForQuery') answers++;
      return emit.call(this, event, ...args);
    };
    try {
      const trx = await store.db.startTransaction().execute();
      await sql`SELECT ${1}::integer`.execute(trx);
      await sql`SELECT ${2}::integer`.execute(trx);
      await trx.commit().execute();
    } finally {
      connection.emit = emit;
    }
    // The two statements and COMMIT: BEGIN had no answer of its own.
    expect(answers).toBe(3);
  });

  it('commits what the first statement wrote', async () => {
    const trx = await store.db.startTransaction().execute();
    const { rows } = await sql<{ n: number }>`INSERT INTO begin_probe VALUES (${2}) RETURNING n`.execute(trx);
    expect(rows).toEqual([{ n: 2 }]);
    await trx.commit().execute();
    expect(await count()).toBe(1);
  });

  it("answers the first statement's error, and the connection serves the next transaction", async () => {
    // More transactions than the pool has connections: each connection has one fail.
    for (let i = 0; i < 8; i++) {
      const trx = await store.db.startTransaction().execute();
      const failed = await sql`INSERT INTO begin_probe VALUES (${2})`.execute(trx).catch((error: unknown) => error);
      expect((failed as { code?: string }).code).toBe('23505');
      // The transaction is open and aborted, as after a BEGIN of its own.
      const next = await sql`SELECT ${1}::integer`.execute(trx).catch((error: unknown) => error);
      expect((next as { code?: string }).code).toBe('25P02');
      await trx.rollback().execute();
    }
    await store.db.transaction().execute(async (trx) => {
      await sql`INSERT INTO begin_probe VALUES (${3})`.execute(trx);
    });
    expect(await count()).toBe(2);
  });

  it('a transaction without statements, and one whose first statement has no parameters', async () => {
    for (let i = 0; i < 8; i++) await (await store.db.startTransaction().execute()).commit().execute();
    const trx = await store.db.startTransaction().execute();
    await sql`INSERT INTO begin_probe VALUES (10); INSERT INTO begin_probe VALUES (11)`.execute(trx);
    await trx.rollback().execute();
    expect(await count()).toBe(2);
    // Outside a transaction a statement commits on its own, as before.
    await sql`INSERT INTO begin_probe VALUES (${12})`.execute(store.db);
    expect(await count()).toBe(3);
  });

  it('a prepared statement that failed to parse behind BEGIN is parsed again next time', async () => {
    const text = preparedOnPostgres('SELECT n FROM begin_late WHERE n = $1::integer');
    // One after the other, so the pool hands the same connections out again.
    for (let i = 0; i < 8; i++) {
      const trx = await store.db.startTransaction().execute();
      const failed = await trx.executeQuery(CompiledQuery.raw(text, [1])).catch((error: unknown) => error);
      expect((failed as { code?: string }).code).toBe('42P01');
      await trx.rollback().execute();
    }
    await sql`CREATE TABLE begin_late (n integer)`.execute(store.db);
    for (let i = 0; i < 8; i++) {
      const trx = await store.db.startTransaction().execute();
      const { rows } = await trx.executeQuery(CompiledQuery.raw(text, [1]));
      expect(rows).toEqual([]);
      await trx.commit().execute();
    }
  });
});
