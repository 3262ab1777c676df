import { randomBytes } from 'node:crypto';
import pg from 'pg';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrateToLatest } from '../src/store/migrations.ts';
import type { Database, Dialect } from '../src/store/schema.ts';
import { PreferenceView } from '../src/notify/preferences.ts';
import { readPreferences } from '../src/chat/preferences.ts';
import { TEST_DATABASE_URL, TEST_SECRETS, describeOnPostgres } from './helpers/stores.ts';

/** 0012_preferences on an installation in use: its users and devices go on as they were. */
const BEFORE = '0010_gateway_sends';

async function devicesKeepAlerting(db: Kysely<any>, dialect: Dialect, schema?: string) {
  await migrateToLatest(db, dialect, TEST_SECRETS, schema, BEFORE);
  await db
    .insertInto('users')
    .values({ id: 'u-ann', email: 'ann@example.org', name: 'Ann', nick: 'ann', apikey: 'k-ann', created_at: 1 })
    .execute();
  const station = 'ab'.repeat(16);
  await db
    .insertInto('devices')
    .values({
      station,
      user_id: 'u-ann',
      platform: 'ios',
      push_provider: 'apns',
      push_token: 'ff'.repeat(32),
      last_seen_at: 1,
      created_at: 1,
    })
    .execute();

  await migrateToLatest(db, dialect, TEST_SECRETS, schema);
  const typed = db as Kysely<Database>;
  expect(await readPreferences(typed, 'u-ann')).toEqual({
    dndUntil: null,
    quietHours: null,
    conversationMutes: {},
    alertKinds: { [station]: null },
    silentNow: false,
  });
  const view = await PreferenceView.load(typed, { refreshMs: 0 });
  expect(view.size).toBe(0);
  expect(view.silences('u-ann', 'c1', Date.now())).toBeUndefined();
  expect(view.alertsOn('u-ann', station, 'message')).toBe(true);
  expect(view.alertsOn('u-ann', station, 'app.invoice')).toBe(true);
}

describe('0012_preferences on sqlite', () => {
  it('a device registered before it alerts for every kind, and nobody is silent', async () => {
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SQLite(':memory:') }) });
    try {
      await devicesKeepAlerting(db, 'sqlite');
    } finally {
      await db.destroy();
    }
  });
});

describeOnPostgres('0012_preferences', () => {
  it('a device registered before it alerts for every kind, and nobody is silent', async () => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 2, options: `-c search_path=${schema}` });
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    try {
      await devicesKeepAlerting(db, 'postgres', schema);
    } finally {
      await db.destroy();
      const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
  });
});
