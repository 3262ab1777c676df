import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openStore, type Store } from '../../src/store/db.ts';

export const TEST_DATABASE_URL = process.env.HERALD_TEST_DATABASE_URL;
export const TEST_REDIS_URL = process.env.HERALD_TEST_REDIS_URL;

export interface StoreKind {
  name: 'sqlite' | 'postgres';
  /** A fresh, migrated, empty store. */
  open(): Promise<Store>;
}

const sqlite: StoreKind = { name: 'sqlite', open: () => openStore({ sqliteFile: ':memory:' }) };

/**
 * A PostgreSQL store in a schema of its own, dropped again when the store closes, so test
 * files can run side by side against one database.
 */
const postgres: StoreKind = {
  name: 'postgres',
  async open() {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const store = await openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 5 });
    return {
      ...store,
      async close() {
        await store.close();
        const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await client.end();
      },
    };
  },
};

let announced = false;

/** SQLite always; PostgreSQL when HERALD_TEST_DATABASE_URL is set (said once otherwise). */
export function storeKinds(): StoreKind[] {
  if (TEST_DATABASE_URL) return [sqlite, postgres];
  if (!announced) {
    announced = true;
    console.warn('HERALD_TEST_DATABASE_URL is unset: PostgreSQL store tests are skipped');
  }
  return [sqlite];
}

if (!TEST_DATABASE_URL) {
  console.warn('HERALD_TEST_DATABASE_URL is unset: the PostgreSQL cases of this file are skipped');
}

/** For describe.each: every store kind, with PostgreSQL marked skipped when unset. */
export const STORE_KINDS: Array<{ name: string; kind: StoreKind | undefined }> = [
  { name: 'sqlite', kind: sqlite },
  { name: 'postgres', kind: TEST_DATABASE_URL ? postgres : undefined },
];
