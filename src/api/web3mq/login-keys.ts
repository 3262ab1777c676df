import type { Kysely } from 'kysely';
import type { Database } from '../../store/schema.ts';

/** A temporary login key of a user and when it stops being accepted. */
export interface LoginKey {
  pubkey: string;
  expiresAt: number;
}

/** The key lookups that authenticate a ConnectReq on Web3MQ's live socket. */
export interface LoginKeys {
  /** The user's unexpired login keys at `now`, newest login first, at most `limit`. */
  unexpired(userId: string, now: number, limit: number): Promise<LoginKey[]>;
  /** Whether the user has any login key, expired or not. */
  hasAny(userId: string): Promise<boolean>;
  /** The main key of the user's Web3MQ account, if there is one. */
  mainKey(userId: string): Promise<string | undefined>;
}

export function loginKeys(db: Kysely<Database>): LoginKeys {
  return {
    async unexpired(userId, now, limit) {
      const rows = await db
        .selectFrom('web3mq_login_keys')
        .select(['pubkey', 'expires_at'])
        .where('user_id', '=', userId)
        .where('expires_at', '>', now)
        .orderBy('created_at', 'desc')
        .limit(limit)
        .execute();
      return rows.map((row) => ({ pubkey: row.pubkey, expiresAt: row.expires_at }));
    },
    async hasAny(userId) {
      const row = await db.selectFrom('web3mq_login_keys').select('pubkey').where('user_id', '=', userId).executeTakeFirst();
      return row !== undefined;
    },
    async mainKey(userId) {
      const account = await db.selectFrom('web3mq_accounts').select('main_pubkey').where('user_id', '=', userId).executeTakeFirst();
      return account?.main_pubkey;
    },
  };
}
