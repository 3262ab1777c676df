import { CompiledQuery, SqliteAdapter, type Kysely, type Transaction } from 'kysely';
import type { Dialect } from './db.ts';
import type { Database } from './schema.ts';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * A statement of the hot path written once as SQL text, for each database. Running it skips
 * Kysely's query builder and compiler (a third of an API call's CPU when every query is built
 * anew), and the same string object reaches the driver every time, so SQLite's statement
 * cache finds it without hashing a fresh string. It still runs through Kysely's connection,
 * so it takes part in the caller's transaction and waits for the connection like any query.
 */
export class Statement<Row> {
  private readonly text: Record<Dialect, string>;

  /**
   * `text` uses `?` for parameters (numbered `$1`, `$2`… for PostgreSQL); where the two
   * databases need different SQL, give both.
   */
  constructor(text: string | Record<Dialect, string>) {
    const both = typeof text === 'string' ? { sqlite: text, postgres: text } : text;
    let n = 0;
    this.text = { sqlite: both.sqlite, postgres: both.postgres.replace(/\?/g, () => `$${++n}`) };
  }

  async all(db: Db, parameters: readonly unknown[]): Promise<Row[]> {
    const result = await db.executeQuery<Row>(CompiledQuery.raw(this.text[dialectOf(db)], parameters as unknown[]));
    return result.rows;
  }

  async first(db: Db, parameters: readonly unknown[]): Promise<Row | undefined> {
    return (await this.all(db, parameters))[0];
  }
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
