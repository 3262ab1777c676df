import type { Store } from '../../src/store/db.ts';
import { feedHead } from '../../src/notify/feed.ts';

/** Row counts and counters that a refused call must leave exactly as they were. */
export async function snapshot(store: Store) {
  const db = store.db;
  const count = async (
    table:
      | 'users'
      | 'devices'
      | 'friendships'
      | 'blocks'
      | 'conversations'
      | 'participants'
      | 'messages'
      | 'reports'
      | 'notifications'
      | 'deliveries'
      | 'thread_unread'
      | 'idempotency_keys'
      | 'api_tokens',
  ) =>
    Number(
      (
        await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const tables = [
    'users',
    'devices',
    'friendships',
    'blocks',
    'conversations',
    'participants',
    'messages',
    'reports',
    'notifications',
    'deliveries',
    'thread_unread',
    'idempotency_keys',
    'api_tokens',
  ] as const;
  const counts: Record<string, number> = {};
  for (const table of tables) counts[table] = await count(table);
  const users = [];
  for (const user of await db.selectFrom('users').select(['id', 'availability']).orderBy('id').execute()) {
    users.push({ ...user, ...(await feedHead(db, user.id)) });
  }
  const participants = await db
    .selectFrom('participants')
    .select(['conversation_id', 'user_id', 'unread_count', 'is_muted', 'is_favorite', 'hide_id', 'background_color', 'cleared_before_seq'])
    .orderBy('conversation_id')
    .orderBy('user_id')
    .execute();
  const devices = await db.selectFrom('devices').select(['station', 'user_id', 'platform', 'push_token']).orderBy('station').execute();
  return { counts, users, participants, devices };
}
