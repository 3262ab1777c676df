import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, type SqliteDatabase } from 'kysely';
import type { Database, Dialect } from './schema.ts';
import { migrateToLatest, SECRETS_SEALED } from './migrations.ts';
import { dataKeyFromDir, SecretBox } from './secrets.ts';
import { makePrivateDir, PRIVATE_FILE_MODE } from '../files.ts';
import { postgresBulkWriter, sqliteBulkWriter, type BulkWriter } from './bulk.ts';
import { preparedName, registerSqliteConnection } from './statement.ts';
import { LOG_BOUND_BYTES, startCheckpointer, type LogHolds } from './checkpointer.ts';

export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** The data key: seals and opens the API keys and UDP secrets this database holds. */
  secrets: SecretBox;
  /** The hot path's audience-sized statements, written for this database. */
  bulk: BulkWriter;
  /**
   * SQLite: undefined while writes may go ahead; past the write-ahead log's bound, a promise
   * that settles once the log has been copied into the database, so that the next write
   * starts it over (see startCheckpointer). The notifier waits on it before a transaction.
   */
  logRoom?(): Promise<void> | undefined;
  /** SQLite: how often and how long writers were held by logRoom so far. */
  logHolds?(): LogHolds;
  /**
   * How many of the notifier's transactions may run at once. SQLite has one writer; on
   * PostgreSQL each transaction waits a round trip per statement, so several run side by
   * side on the pool's connections (feed heads are locked per user, see bulk.ts).
   */
  writers: number;
  close(): Promise<void>;
}

/** The notifier's transactions at once on PostgreSQL, leaving the rest of the pool to reads. */
const POSTGRES_WRITERS = 4;

/** The PostgreSQL driver, loaded only by a node that uses it (it costs a SQLite node's start). */
async function loadPg() {
  const { default: pg } = await import('pg');
  // PostgreSQL returns int8 as text by default; every bigint here is a time or a count
  // well inside Number.MAX_SAFE_INTEGER.
  pg.types.setTypeParser(20, (value) => Number(value));
  return pg;
}

export interface OpenStoreOptions {
  databaseUrl?: string;
  /** SQLite file; ':memory:' for a throwaway database. */
  sqliteFile?: string;
  /** PostgreSQL schema to use (tests isolate themselves in one each). */
  pgSchema?: string;
  poolSize?: number;
  /** SQLite: the write-ahead log's size past which writers wait for the checkpoint (tests make it small). */
  logBoundBytes?: number;
  /**
   * The data key. Required with PostgreSQL; SQLite takes `secret.key` beside its file when it
   * is not given (made there once), and a throwaway key for ':memory:'.
   */
  secrets?: SecretBox;
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    const schema = options.pgSchema;
    if (schema && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`bad schema name ${schema}`);
    const pg = await loadPg();
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
    // An idle client whose server went away (a restart, a failover) is an error event of the
    // pool: without a listener it would end the process. The pool drops that client, and
    // the next query connects anew (or fails, and is answered 503, while the server is away).
    pool.on('error', () => {});
    const secrets = options.secrets;
    if (!secrets) throw new Error('a PostgreSQL store needs the data key');
    const BeginFirst = beginFirstQuery(pg);
    pool.on('connect', (client) => pipelineHotPath(BeginFirst, client));
    // A connection handed back with its BEGIN still held (a transaction left without COMMIT
    // or ROLLBACK, which sent nothing) must not open it with its next user's statement.
    pool.on('release', (_error, client) => (client as unknown as { heraldDropBegin?(): void }).heraldDropBegin?.());
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      await migrateToLatest(db, 'postgres', secrets, schema);
    } catch (error) {
      await db.destroy();
      throw error;
    }
    const poolSize = options.poolSize ?? 10;
    const writers = Math.max(1, Math.min(POSTGRES_WRITERS, poolSize - 2));
    return { db, dialect: 'postgres', secrets, bulk: postgresBulkWriter, writers, close: () => db.destroy() };
  }
  const file = options.sqliteFile ?? ':memory:';
  const inMemory = file === ':memory:';
  if (!inMemory) {
    makePrivateDir(path.dirname(file));
    // Made owner-only before SQLite opens it: SQLite gives its -wal and -shm files the
    // database file's mode.
    fs.closeSync(fs.openSync(file, 'a', PRIVATE_FILE_MODE));
    fs.chmodSync(file, PRIVATE_FILE_MODE);
  }
  const secrets = options.secrets ?? (inMemory ? SecretBox.ephemeral() : new SecretBox(dataKeyFromDir(path.dirname(file)).key));
  const database = new SQLite(file);
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma('foreign_keys = ON');
  database.pragma('busy_timeout = 5000');
  // Feeds are written at random places of their indexes (one row per recipient): keep the
  // hot pages in memory rather than SQLite's default 2 MB.
  database.pragma('cache_size = -65536');
  const checkpointer = file === ':memory:' ? undefined : startCheckpointer(database, file, options.logBoundBytes ?? LOG_BOUND_BYTES);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
  registerSqliteConnection(db, database);
  let applied: string[];
  try {
    applied = await migrateToLatest(db, 'sqlite', secrets);
  } catch (error) {
    await checkpointer?.close();
    await db.destroy();
    throw error;
  }
  if (!inMemory && applied.includes(SECRETS_SEALED)) {
    // The clear keys the migration replaced are still in the file's free space and in the
    // log: the database is written anew, and the log emptied.
    database.exec('VACUUM');
    database.pragma('wal_checkpoint(TRUNCATE)');
  }
  return {
    db,
    dialect: 'sqlite',
    secrets,
    bulk: sqliteBulkWriter(database),
    writers: 1,
    logRoom: checkpointer?.room,
    logHolds: checkpointer?.holds,
    async close() {
      // The checkpointer's connection closes first, so the serving connection is the last
      // one and SQLite folds the whole log into the database and removes it.
      await checkpointer?.close();
      await db.destroy();
    },
  };
}

/** What a query that was not sent answers: no rows. */
function noRows(command: string) {
  return Promise.resolve({ command, rowCount: null, rows: [], fields: [] });
}

type Pg = Awaited<ReturnType<typeof loadPg>>;
type Callback = (error: Error | undefined, result: unknown) => void;

/**
 * One statement of a transaction sent right behind its BEGIN, in one write: BEGIN's Parse,
 * Bind and Execute, then the statement's own, then one Sync. The server runs them in order
 * as if they had come one by one, and the transaction's first statement waits for no round
 * trip of BEGIN's. Only the statement's answer is kept. If BEGIN failed, the server skips
 * the statement and the error is the query's; a failing statement leaves the transaction
 * open and aborted, as it would after a BEGIN of its own, for the caller to roll back.
 */
function beginFirstQuery(pg: Pg) {
  return class BeginFirst extends pg.Query {
    private begun = false;
    /** Whether this connection had the statement prepared already (see handleError). */
    private prepared = true;

    override submit = (connection: import('pg').Connection): void => {
      // (pg.Query's own submit answers an Error for a query it cannot send; none here: the
      // text is a string and the values an array.)
      const raw = connection as unknown as {
        stream: { cork?(): void; uncork?(): void };
        parse(query: { text: string; name: string }): void;
        bind(config: { portal: string; statement: string; values: unknown[] }): void;
        execute(config: { portal: string; rows: number }): void;
      };
      const name = (this as unknown as { name?: string }).name;
      this.prepared = !name || (connection as unknown as { parsedStatements: Record<string, string> }).parsedStatements[name] !== undefined;
      raw.stream.cork?.();
      try {
        raw.parse({ text: 'BEGIN', name: '' });
        raw.bind({ portal: '', statement: '', values: [] });
        raw.execute({ portal: '', rows: 0 });
        (pg.Query.prototype as unknown as { submit(connection: unknown): void }).submit.call(this, connection);
      } finally {
        raw.stream.uncork?.();
      }
    };

    // pg takes BEGIN's ParseComplete for the statement's own: if the statement then fails
    // to parse, its name must not stay marked as prepared on this connection.
    handleError(error: Error, connection: unknown): void {
      const name = (this as unknown as { name?: string }).name;
      if (!this.prepared && name) delete (connection as { parsedStatements: Record<string, string> }).parsedStatements[name];
      (pg.Query.prototype as unknown as { handleError(e: Error, c: unknown): void }).handleError.call(this, error, connection);
    }

    handleCommandComplete(message: unknown, connection: unknown): void {
      if (!this.begun) {
        this.begun = true; // BEGIN's
        return;
      }
      (pg.Query.prototype as unknown as { handleCommandComplete(m: unknown, c: unknown): void }).handleCommandComplete.call(
        this,
        message,
        connection,
      );
    }
  };
}

/**
 * What the hot path sends, on each pooled connection:
 * - Kysely sends every statement unnamed, so PostgreSQL parses and plans it on every call.
 *   The hot path's statements (preparedOnPostgres) are sent under their name instead: pg
 *   prepares each once per connection, then only binds and executes it.
 * - Kysely's BEGIN is held back and sent with the transaction's first statement (BeginFirst):
 *   pg sends a client's queries one after the other, each after the previous one's answer,
 *   so a BEGIN of its own cost every transaction a round trip before its first statement.
 *   A transaction that ends before any statement sends nothing at all.
 */
function pipelineHotPath(BeginFirst: ReturnType<typeof beginFirstQuery>, client: import('pg').PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  let beginHeld = false;
  const send = (config: unknown, values?: unknown, callback?: unknown) => {
    const name = typeof config === 'string' && Array.isArray(values) ? preparedName(config) : undefined;
    return name ? query({ name, text: config, values }, callback) : query(config, values, callback);
  };
  (client as unknown as { heraldDropBegin(): void }).heraldDropBegin = () => (beginHeld = false);
  client.query = ((config: unknown, values?: unknown, callback?: unknown) => {
    if (callback === undefined && typeof config === 'string' && (values === undefined || (Array.isArray(values) && values.length === 0))) {
      if (config === 'begin') {
        if (beginHeld) return Promise.reject(new Error('BEGIN inside a transaction'));
        beginHeld = true;
        return noRows('BEGIN');
      }
      if (beginHeld && (config === 'commit' || config === 'rollback')) {
        beginHeld = false;
        return noRows(config.toUpperCase());
      }
    }
    if (!beginHeld) return send(config, values, callback);
    beginHeld = false;
    // A statement with parameters goes right behind BEGIN. Any other (text of several
    // statements, as migrations send, or a call with a callback) waits for BEGIN's answer.
    if (callback === undefined && typeof config === 'string' && Array.isArray(values) && values.length > 0) {
      const name = preparedName(config);
      return new Promise((resolve, reject) => {
        query(
          new BeginFirst({ text: config, values, ...(name ? { name } : {}) }, ((error, result) =>
            error ? reject(error) : resolve(result)) as Callback),
        );
      });
    }
    return (query('begin') as Promise<unknown>).then(() => send(config, values, callback));
  }) as typeof client.query;
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

/** PostgreSQL error classes that mean the server cannot be used just now (57P01–57P03 shutdowns, 08 connection exceptions). */
const UNAVAILABLE_SQLSTATE = /^(57P0[123]|08...)$/;
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND']);
const UNAVAILABLE_MESSAGE = /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/;

/**
 * Whether an error says the database cannot be reached or is restarting, rather than that
 * the request was wrong: the request may succeed as it is once the database is back (503).
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (
    let current = error as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown } | undefined, depth = 0;
    current && depth < 4;
    depth++
  ) {
    const code = current.code;
    if (typeof code === 'string' && (UNAVAILABLE_ERRNO.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return true;
    if (typeof current.message === 'string' && UNAVAILABLE_MESSAGE.test(current.message)) return true;
    if (Array.isArray(current.errors) && current.errors.some((inner) => isDatabaseUnavailable(inner))) return true;
    current = current.cause as typeof current;
  }
  return false;
}
