import type { Migration } from 'kysely';
import type { Dialect } from './schema.ts';
import type { SecretBox } from './secrets.ts';

/**
 * One set of migrations for both databases. The few places where SQLite and PostgreSQL
 * differ (auto-increment keys, 64-bit times) go through `serial` and `time`.
 */
export interface MigrationContext {
  dialect: Dialect;
  /** Column type of an auto-incremented primary key. */
  serial: 'integer' | 'bigserial';
  /** Column type for unix-millisecond times and other 64-bit counts. */
  time: 'integer' | 'bigint';
  /** The data key: a migration that seals secrets (or opens them) uses it. */
  secrets: SecretBox;
}

export type HeraldMigration = (ctx: MigrationContext) => Migration;
