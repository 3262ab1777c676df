import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../store/schema.ts';
import { badRequest, notFound } from '../errors.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** Friendship is mutual: one row each way. Adding an existing friendship changes nothing. */
export async function addFriendship(db: Db, a: string, b: string): Promise<void> {
  if (a === b) throw badRequest('a user cannot be their own friend');
  const now = Date.now();
  for (const [user, friend] of [
    [a, b],
    [b, a],
  ]) {
    await db
      .insertInto('friendships')
      .values({ user_id: user, friend_id: friend, created_at: now })
      .onConflict((oc) => oc.columns(['user_id', 'friend_id']).doNothing())
      .execute();
  }
}

/** Ends a friendship both ways; a 404 when the two were not friends. */
export async function removeFriendship(db: Db, a: string, b: string): Promise<void> {
  const result = await db
    .deleteFrom('friendships')
    .where((eb) =>
      eb.or([eb.and([eb('user_id', '=', a), eb('friend_id', '=', b)]), eb.and([eb('user_id', '=', b), eb('friend_id', '=', a)])]),
    )
    .executeTakeFirst();
  if (Number(result.numDeletedRows) === 0) throw notFound(`${a} and ${b} are not friends`);
}

export async function friendIdsOf(db: Db, userId: string): Promise<string[]> {
  const rows = await db.selectFrom('friendships').select('friend_id').where('user_id', '=', userId).execute();
  return rows.map((r) => r.friend_id);
}

export async function listFriends(db: Db, userId: string) {
  return db
    .selectFrom('friendships')
    .innerJoin('users', 'users.id', 'friendships.friend_id')
    .select(['users.id', 'users.name', 'users.nick', 'users.availability', 'users.availability_changed_at'])
    .where('friendships.user_id', '=', userId)
    .orderBy('users.name')
    .execute();
}
