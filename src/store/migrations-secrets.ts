import { sql, type Kysely } from 'kysely';
import type { HeraldMigration } from './migration.ts';
import { sealContext } from './secrets.ts';

/** Rows sealed per batch: each batch is read by key order after the last one. */
const BATCH = 500;

/**
 * Secrets at rest: API keys and UDP secrets leave the database in the clear. An API key
 * becomes its lookup hash (in the column's place, keeping its unique index, which logins look
 * up) and a sealed copy; a UDP secret becomes sealed in its own place. The data key's check
 * value is kept, so a node holding another key refuses to start rather than fail on every login.
 */
export const secretsAtRestMigration: HeraldMigration = ({ dialect, secrets }) => ({
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('herald_data_key')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('check_value', 'varchar(64)', (c) => c.notNull())
      .execute();
    await db.insertInto('herald_data_key').values({ id: 1, check_value: secrets.checkValue }).execute();

    await sql`ALTER TABLE users RENAME COLUMN apikey TO apikey_hash`.execute(db);
    await sql`ALTER TABLE users ADD COLUMN apikey_sealed varchar(200)`.execute(db);
    for (;;) {
      const users = await db
        .selectFrom('users')
        .select(['id', 'apikey_hash as apikey'])
        .where('apikey_sealed', 'is', null)
        .orderBy('id')
        .limit(BATCH)
        .execute();
      for (const { id, apikey } of users) {
        await db
          .updateTable('users')
          .set({ apikey_hash: secrets.lookupHash(apikey), apikey_sealed: secrets.seal(apikey, sealContext.apikey(id)) })
          .where('id', '=', id)
          .execute();
      }
      if (users.length < BATCH) break;
    }
    if (dialect === 'postgres') await sql`ALTER TABLE users ALTER COLUMN apikey_sealed SET NOT NULL`.execute(db);

    await sql`ALTER TABLE devices RENAME COLUMN udp_secret TO udp_secret_sealed`.execute(db);
    // A sealed secret (base64 of nonce, 64 characters and tag) is longer than the hex secret.
    if (dialect === 'postgres') await sql`ALTER TABLE devices ALTER COLUMN udp_secret_sealed TYPE varchar(200)`.execute(db);
    let after = '';
    for (;;) {
      const devices = await db
        .selectFrom('devices')
        .select(['station', 'udp_secret_sealed as secret'])
        .where('station', '>', after)
        .where('udp_secret_sealed', 'is not', null)
        .orderBy('station')
        .limit(BATCH)
        .execute();
      for (const { station, secret } of devices) {
        await db
          .updateTable('devices')
          .set({ udp_secret_sealed: secrets.seal(secret, sealContext.udpSecret(station)) })
          .where('station', '=', station)
          .execute();
      }
      if (devices.length < BATCH) break;
      after = devices[devices.length - 1].station;
    }
  },
});
