import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, type SqliteDatabase } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';
import { migrateToLatest } from './migrations.ts';
import { postgresBulkWriter, sqliteBulkWriter, type BulkWriter } from './bulk.ts';
import { registerSqliteConnection } from './statement.ts';

export type Dialect = 'sqlite' | 'postgres';

export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** The hot path's audience-sized statements, written for this database. */
  bulk: BulkWriter;
  close(): Promise<void>;
}

// PostgreSQL returns int8 as text by default; every bigint here is a time or a count
// well inside Number.MAX_SAFE_INTEGER.
pg.types.setTypeParser(20, (value) => Number(value));

export interface OpenStoreOptions {
  databaseUrl?: string;
  /** SQLite file; ':memory:' for a throwaway database. */
  sqliteFile?: string;
  /** PostgreSQL schema to use (tests isolate themselves in one each). */
  pgSchema?: string;
  poolSize?: number;
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    const schema = options.pgSchema;
    if (schema && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`bad schema name ${schema}`);
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    await migrateToLatest(db, 'postgres', schema);
    return { db, dialect: 'postgres', bulk: postgresBulkWriter, close: () => db.destroy() };
  }
  const file = options.sqliteFile ?? ':memory:';
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const database = new SQLite(file);
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma('foreign_keys = ON');
  database.pragma('busy_timeout = 5000');
  // Feeds are written at random places of their indexes (one row per recipient): keep the
  // hot pages in memory rather than SQLite's default 2 MB.
  database.pragma('cache_size = -65536');
  const checkpointer = file === ':memory:' ? undefined : startCheckpointer(database, file);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
  registerSqliteConnection(db, database);
  await migrateToLatest(db, 'sqlite');
  return {
    db,
    dialect: 'sqlite',
    bulk: sqliteBulkWriter(database),
    async close() {
      // The checkpointer's connection closes first, so the serving connection is the last
      // one and SQLite folds the whole log into the database and removes it.
      await checkpointer?.close();
      await db.destroy();
    },
  };
}

/** Prepared statements kept per SQL text; the oldest is dropped past this many. */
const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely asks the driver to prepare every query it runs; preparing costs more than running
 * the small statements of an API call. better-sqlite3 statements can be run again and
 * again, so they are kept by their SQL text. (Kysely runs one query at a time on its
 * single SQLite connection and never streams here, so a statement is never busy twice.)
 */
function withStatementCache(database: SQLite.Database): SqliteDatabase {
  const statements = new Map<string, SQLite.Statement>();
  return {
    close: () => database.close(),
    prepare(sqlText) {
      let statement = statements.get(sqlText);
      if (!statement) {
        statement = database.prepare(sqlText);
        if (statements.size >= STATEMENT_CACHE_SIZE) statements.delete(statements.keys().next().value!);
        statements.set(sqlText, statement);
      }
      return statement;
    },
  };
}

/** How often the checkpoint thread copies the write-ahead log into the database. */
const CHECKPOINT_INTERVAL_MS = 1000;

/**
 * SQLite's automatic checkpoint runs inside the commit that crosses 1,000 log pages, on the
 * event loop: a commit now and then pays for copying the log into the database (measured
 * at 10-20 % of a large fan-out). Here it is turned off for the serving connection and
 * done by a worker thread with a connection of its own.
 */
function startCheckpointer(database: SQLite.Database, file: string) {
  const worker = new Worker(new URL('./checkpoint-worker.cjs', import.meta.url), {
    workerData: { file, driver: createRequire(import.meta.url).resolve('better-sqlite3'), intervalMs: CHECKPOINT_INTERVAL_MS },
  });
  database.pragma('wal_autocheckpoint = 0');
  // A checkpoint thread that cannot run must not leave the log growing without bound.
  const fallBack = () => database.pragma('wal_autocheckpoint = 1000');
  worker.on('error', fallBack);
  worker.unref();
  return {
    close: () =>
      new Promise<void>((resolve) => {
        const done = () => resolve();
        worker.once('exit', done);
        worker.on('message', (message: { type: string }) => {
          if (message.type === 'closed') void worker.terminate().then(done, done);
        });
        worker.postMessage('close');
      }),
  };
}
