import { sql, type Kysely, type Transaction } from 'kysely';
import type { Bus } from '../cluster/bus.ts';
import type { Database } from '../store/schema.ts';
import { resolveUser } from './users.ts';

type Db = Kysely<Database>;

/** What deleting a user took away, for the caller to report. */
export interface DeletedUser {
  userid: string;
  email: string;
  /** The stations of the devices removed; their live connections were asked to end. */
  stations: string[];
  notifications: number;
  deliveries: number;
  friends: number;
  /** Conversations the user left; those with nobody left in them were deleted. */
  conversations: number;
}

/**
 * Deletes a user and everything that is theirs, in one transaction: devices, feed, outbox
 * rows, unread counters, preferences and mutes, friendships both ways, blocks by and of
 * them, conversation memberships and their reports (a conversation nobody is left in goes
 * with its messages), and their Web3MQ keys, friend requests, group memberships and topics.
 * Messages they sent stay in the conversations of the others, whose history they are.
 * Then every node ends the live connections of the removed devices.
 */
export async function deleteUser(db: Db, bus: Pick<Bus, 'publishDisconnect'>, emailOrId: string): Promise<DeletedUser> {
  const user = await resolveUser(db, emailOrId);
  const deleted = await db.transaction().execute((trx) => deleteUserRows(trx, user.id, user.key));
  for (const station of deleted.stations) {
    await bus.publishDisconnect({ userId: user.id, station, reason: 'this user was deleted' });
  }
  return { userid: user.id, email: user.email, ...deleted };
}

async function deleteUserRows(trx: Transaction<Database>, userId: string, userKey: number) {
  const count = (result: { numDeletedRows: bigint }) => Number(result.numDeletedRows);
  const devices = await trx.selectFrom('devices').select('station').where('user_id', '=', userId).orderBy('station').execute();
  const deliveries = count(await trx.deleteFrom('deliveries').where('user_id', '=', userId).executeTakeFirstOrThrow());
  const notifications = count(
    await trx
      .deleteFrom('notifications')
      .where(sql<boolean>`epoch IN (SELECT epoch FROM feed_epochs WHERE user_key = ${userKey})`)
      .where('user_key', '=', userKey)
      .executeTakeFirstOrThrow(),
  );
  await trx.deleteFrom('feed_epochs').where('user_key', '=', userKey).execute();
  await trx.deleteFrom('devices').where('user_id', '=', userId).execute();
  for (const table of ['thread_unread', 'user_preferences', 'conversation_mutes'] as const) {
    await trx.deleteFrom(table).where('user_id', '=', userId).execute();
  }

  const friends = count(await trx.deleteFrom('friendships').where('user_id', '=', userId).executeTakeFirstOrThrow());
  await trx.deleteFrom('friendships').where('friend_id', '=', userId).execute();
  await trx
    .deleteFrom('blocks')
    .where((eb) => eb.or([eb('user_id', '=', userId), eb('blocked_user_id', '=', userId)]))
    .execute();

  const left = (await trx.selectFrom('participants').select('conversation_id').where('user_id', '=', userId).execute()).map(
    (row) => row.conversation_id,
  );
  await trx.deleteFrom('participants').where('user_id', '=', userId).execute();
  await trx.deleteFrom('reports').where('user_id', '=', userId).execute();
  if (left.length > 0) {
    const empty = (
      await trx
        .selectFrom('conversations')
        .select('id')
        .where('id', 'in', left)
        .where(({ not, exists, selectFrom }) =>
          not(exists(selectFrom('participants').select('user_id').whereRef('participants.conversation_id', '=', 'conversations.id'))),
        )
        .execute()
    ).map((row) => row.id);
    if (empty.length > 0) {
      await trx.deleteFrom('messages').where('conversation_id', 'in', empty).execute();
      await trx.deleteFrom('reports').where('conversation_id', 'in', empty).execute();
      await trx.deleteFrom('conversations').where('id', 'in', empty).execute();
    }
    // The others' clients see the member list change through the Ozeki change feed.
    await trx.updateTable('conversations').set({ changed_at: Date.now() }).where('id', 'in', left).execute();
  }

  await trx.deleteFrom('web3mq_subscriptions').where('user_id', '=', userId).execute();
  const topics = trx.selectFrom('web3mq_topics').select('id').where('owner_id', '=', userId);
  await trx.deleteFrom('web3mq_subscriptions').where('topic_id', 'in', topics).execute();
  await trx.deleteFrom('web3mq_topics').where('owner_id', '=', userId).execute();
  await trx
    .deleteFrom('web3mq_friend_requests')
    .where((eb) => eb.or([eb('requester_id', '=', userId), eb('target_id', '=', userId)]))
    .execute();
  await trx.deleteFrom('web3mq_group_members').where('user_id', '=', userId).execute();
  await trx.updateTable('web3mq_group_members').set({ invited_by: null }).where('invited_by', '=', userId).execute();
  await trx.deleteFrom('web3mq_login_keys').where('user_id', '=', userId).execute();
  await trx.deleteFrom('web3mq_accounts').where('user_id', '=', userId).execute();

  await trx.deleteFrom('users').where('id', '=', userId).execute();
  return { stations: devices.map((d) => d.station), notifications, deliveries, friends, conversations: left.length };
}
