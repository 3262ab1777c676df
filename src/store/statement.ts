import type SQLite from 'better-sqlite3';
import { CompiledQuery, SqliteAdapter, type Kysely, type Transaction } from 'kysely';
import type { Database, Dialect } from './schema.ts';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * A statement of the hot path written once as SQL text, for each database. Running it skips
 * Kysely's query builder and compiler (a third of an API call's CPU when every query is built
 * anew), and the same string object reaches the driver every time, so SQLite's statement
 * cache finds it without hashing a fresh string. Outside a transaction it runs through
 * Kysely's connection and waits for it like any query. Inside a SQLite transaction, which
 * holds the only connection, it runs as a prepared statement of that connection directly,
 * without Kysely's layers around each call.
 */
export class Statement<Row> {
  private readonly text: { sqlite?: string; postgres?: string };
  private readonly prepared = new WeakMap<SQLite.Database, SQLite.Statement>();

  /**
   * `text` uses `?` for parameters (numbered `$1`, `$2`… for PostgreSQL; `?3` there is `$3`,
   * for a parameter used twice); where the two databases need different SQL, give both, and
   * a statement of one database only is given for it alone.
   */
  constructor(text: string | { sqlite?: string; postgres?: string }) {
    const both = typeof text === 'string' ? { sqlite: text, postgres: text } : text;
    let n = 0;
    const postgres = both.postgres?.replace(/\?(\d*)/g, (_, d: string) => `$${d || ++n}`);
    this.text = { sqlite: both.sqlite, postgres };
    if (postgres !== undefined) preparedOnPostgres(postgres);
  }

  async all(db: Db, parameters: readonly unknown[]): Promise<Row[]> {
    const connection = db.isTransaction ? sqliteConnections.get(db.getExecutor().adapter) : undefined;
    if (connection) {
      let statement = this.prepared.get(connection);
      if (!statement) {
        if (this.text.sqlite === undefined) throw new Error('a PostgreSQL statement run on SQLite');
        statement = connection.prepare(this.text.sqlite);
        this.prepared.set(connection, statement);
      }
      if (statement.reader) return statement.all(...parameters) as Row[];
      statement.run(...parameters);
      return [];
    }
    const dialect = dialectOf(db);
    const text = this.text[dialect];
    if (text === undefined) throw new Error(`a statement of the other database run on ${dialect}`);
    const result = await db.executeQuery<Row>(CompiledQuery.raw(text, parameters as unknown[]));
    return result.rows;
  }

  async first(db: Db, parameters: readonly unknown[]): Promise<Row | undefined> {
    return (await this.all(db, parameters))[0];
  }
}

/** PostgreSQL statement names by their text: the statements prepared once per connection. */
const preparedNames = new Map<string, string>();

/**
 * Marks a statement of the hot path, by its exact text, to be prepared on each PostgreSQL
 * connection the first time it runs there and only bound and executed afterwards: the server
 * then parses and plans it once per connection instead of on every call (see openStore).
 */
export function preparedOnPostgres(text: string): string {
  if (!preparedNames.has(text)) preparedNames.set(text, `herald_${preparedNames.size + 1}`);
  return text;
}

/** The name a statement is prepared under on PostgreSQL, if it is one of the hot path's. */
export function preparedName(text: string): string | undefined {
  return preparedNames.get(text);
}

/** The SQLite connection behind each SQLite store's Kysely instance (and its transactions). */
const sqliteConnections = new WeakMap<object, SQLite.Database>();

export function registerSqliteConnection(db: Kysely<Database>, connection: SQLite.Database): void {
  sqliteConnections.set(db.getExecutor().adapter, connection);
}

/** Which database a Kysely instance (or one of its transactions) talks to. */
export function dialectOf(db: Db): Dialect {
  return db.getExecutor().adapter instanceof SqliteAdapter ? 'sqlite' : 'postgres';
}

/** A list parameter: one JSON text unpacked by SQLite's json_each, one array for PostgreSQL. */
export function listParameter(db: Db, values: readonly unknown[]): unknown {
  return dialectOf(db) === 'sqlite' ? JSON.stringify(values) : values;
}

/** The SQL that reads a list parameter as a set of values, for `x IN (…)`. */
export const LIST = { sqlite: 'SELECT value FROM json_each(?)', postgres: 'SELECT unnest(?::varchar[])' } as const;
