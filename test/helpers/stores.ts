import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe } from 'vitest';
import { openStore, type Store } from '../../src/store/db.ts';
import { SecretBox } from '../../src/store/secrets.ts';

export const TEST_DATABASE_URL = process.env.HERALD_TEST_DATABASE_URL;
export const TEST_REDIS_URL = process.env.HERALD_TEST_REDIS_URL;

/**
 * The data key of PostgreSQL test stores: stores opened on one schema (two nodes) share it,
 * as the nodes of a cluster share HERALD_SECRET_KEY.
 */
export const TEST_SECRETS = new SecretBox(Buffer.alloc(32, 7));

export interface StoreKind {
  name: 'sqlite' | 'postgres';
  /** A fresh, migrated, empty store. */
  open(): Promise<Store>;
}

/** SQLite in memory: every test file can have it. */
export const SQLITE: StoreKind = { name: 'sqlite', open: () => openStore({ sqliteFile: ':memory:' }) };

/**
 * A PostgreSQL store in a schema of its own, dropped again when the store closes, so test
 * files can run side by side against one database. Undefined when HERALD_TEST_DATABASE_URL
 * is unset.
 */
export const POSTGRES: StoreKind | undefined = TEST_DATABASE_URL
  ? {
      name: 'postgres',
      async open() {
        const schema = `t_${randomBytes(6).toString('hex')}`;
        const store = await openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 5, secrets: TEST_SECRETS });
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
    }
  : undefined;

const POSTGRES_UNSET = 'HERALD_TEST_DATABASE_URL is unset';

// Handed to the blocks registered as skipped: they are collected but never run.
const absentPostgres: StoreKind = {
  name: 'postgres',
  open: () => Promise.reject(new Error(`${POSTGRES_UNSET}: no PostgreSQL store`)),
};

let warned = false;

/** A PostgreSQL block that cannot run: listed as skipped, with the reason, never passed. */
function skipPostgres(title: string, body: () => void): void {
  if (!warned) {
    warned = true;
    console.warn(`${POSTGRES_UNSET}: the PostgreSQL cases of this file are skipped`);
  }
  describe.skip(`${title} (skipped: ${POSTGRES_UNSET})`, body);
}

function titleOn(title: string, name: StoreKind['name']): string {
  return title.includes('$name') ? title.replaceAll('$name', name) : `${title} on ${name}`;
}

/**
 * Runs the block once per store kind: on SQLite always, on PostgreSQL when
 * HERALD_TEST_DATABASE_URL is set and as a skipped block saying so otherwise. The title gets
 * ` on sqlite` / ` on postgres` appended, or the name in place of `$name` if it has one.
 */
export function describeEachStore(title: string, body: (kind: StoreKind) => void): void {
  describe(titleOn(title, 'sqlite'), () => body(SQLITE));
  if (POSTGRES) describe(titleOn(title, 'postgres'), () => body(POSTGRES));
  else skipPostgres(titleOn(title, 'postgres'), () => body(absentPostgres));
}

/**
 * A block that needs PostgreSQL itself (it reaches the database at TEST_DATABASE_URL on its
 * own): run when HERALD_TEST_DATABASE_URL is set, listed as skipped saying why otherwise.
 */
export function describeOnPostgres(title: string, body: () => void): void {
  if (TEST_DATABASE_URL) describe(titleOn(title, 'postgres'), body);
  else skipPostgres(titleOn(title, 'postgres'), body);
}
