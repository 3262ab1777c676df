import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openStore } from '../src/store/db.ts';
import { migrations } from '../src/store/migrations.ts';
import { TEST_DATABASE_URL, TEST_SECRETS, describeOnPostgres } from './helpers/stores.ts';

const names = migrations.map(([name]) => name);

async function appliedMigrations(store: Awaited<ReturnType<typeof openStore>>): Promise<string[]> {
  const rows = await store.db
    .selectFrom('herald_migration' as any)
    .select('name' as any)
    .orderBy('name' as any)
    .execute();
  return rows.map((r: any) => r.name as string);
}

describe('migrations on sqlite', () => {
  it('are applied once: a store opened again finds them recorded and its data kept', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-migrate-'));
    try {
      const file = path.join(dir, 'herald.db');
      const first = await openStore({ sqliteFile: file });
      expect(await appliedMigrations(first)).toEqual(names);
      await first.db
        .insertInto('users')
        .values({ id: 'u1', email: 'a@example.org', name: 'A', nick: 'a', apikey_hash: 'h1', apikey_sealed: 's1', created_at: 1 } as any)
        .execute();
      await first.close();

      const second = await openStore({ sqliteFile: file });
      expect(await appliedMigrations(second)).toEqual(names);
      expect(await second.db.selectFrom('users').select('email').execute()).toEqual([{ email: 'a@example.org' }]);
      await second.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeOnPostgres('migrations', () => {
  async function withAdmin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      return await run(client);
    } finally {
      await client.end();
    }
  }
  const newSchema = () => `t_${randomBytes(6).toString('hex')}`;

  it('two nodes starting together on one schema both come up, and each migration is applied once', async () => {
    const schema = newSchema();
    try {
      const [a, b] = await Promise.all([
        openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 2, secrets: TEST_SECRETS }),
        openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 2, secrets: TEST_SECRETS }),
      ]);
      expect(await appliedMigrations(a)).toEqual(names);
      expect(await appliedMigrations(b)).toEqual(names);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await withAdmin((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    }
  });

  it('stores in neighbouring schemas migrate while other schemas are being dropped', async () => {
    const doomed = Array.from({ length: 6 }, newSchema);
    const fresh = Array.from({ length: 6 }, newSchema);
    try {
      for (const schema of doomed)
        await (await openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 1, secrets: TEST_SECRETS })).close();
      const opening = Promise.all(
        fresh.map((schema) => openStore({ databaseUrl: TEST_DATABASE_URL, pgSchema: schema, poolSize: 2, secrets: TEST_SECRETS })),
      );
      const dropping = withAdmin(async (c) => {
        for (const schema of doomed) await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      });
      const [stores] = await Promise.all([opening, dropping]);
      for (const store of stores) {
        expect(await appliedMigrations(store)).toEqual(names);
        await store.close();
      }
    } finally {
      await withAdmin(async (c) => {
        for (const schema of [...doomed, ...fresh]) await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      });
    }
  });
});
