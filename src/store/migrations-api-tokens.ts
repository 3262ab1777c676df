import type { Kysely } from 'kysely';
import type { HeraldMigration } from './migration.ts';

/**
 * Scoped API tokens for other backends calling /v1. Only a token's SHA-256 hash is kept:
 * the token itself is shown once, when it is made. Every call looks its hash up here (the
 * unique index), so a revocation holds on every node sharing the database at once.
 */
export const apiTokensMigration: HeraldMigration = ({ time }) => ({
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('api_tokens')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(100)', (c) => c.notNull())
      .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
      .addColumn('scopes', 'varchar(400)', (c) => c.notNull())
      .addColumn('created_at', time, (c) => c.notNull())
      .addColumn('expires_at', time)
      .addColumn('revoked_at', time)
      .addColumn('last_used_at', time)
      .execute();
  },
});
