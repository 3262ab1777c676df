import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

/**
 * The Ozeki change feed (`chatnotification/download`): what changed for a user at or after
 * `since` (unix ms). "At or after" because the wire time has whole seconds: a change in
 * the same second as `since` is reported rather than lost.
 */
export async function changesSince(db: Kysely<Database>, userId: string, since: number) {
  const [conversations, lists, friends] = await Promise.all([
    db
      .selectFrom('participants')
      .innerJoin('conversations', 'conversations.id', 'participants.conversation_id')
      .select('conversations.id')
      .where('participants.user_id', '=', userId)
      .where('conversations.changed_at', '>=', since)
      .orderBy('conversations.changed_at')
      .execute(),
    db
      .selectFrom('participants')
      .select('conversation_id')
      .where('user_id', '=', userId)
      .where('list_changed_at', '>=', since)
      .orderBy('list_changed_at')
      .execute(),
    db
      .selectFrom('friendships')
      .innerJoin('users', 'users.id', 'friendships.friend_id')
      .select('users.id')
      .where('friendships.user_id', '=', userId)
      .where('users.availability_changed_at', '>=', since)
      .orderBy('users.availability_changed_at')
      .execute(),
  ]);
  return {
    // "friendavailabilitesof" (sic) is the wire name.
    friendavailabilitesof: friends.map((r) => r.id),
    conversationchangedof: conversations.map((r) => r.id),
    conversationlistchangedof: lists.map((r) => r.conversation_id),
  };
}
