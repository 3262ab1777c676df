import { randomBytes } from 'node:crypto';
import type { Transaction } from 'kysely';
import type { Database } from '../../store/schema.ts';
import type { Notifier } from '../../notify/notifier.ts';
import { addFriendship } from '../../chat/friends.ts';
import { badRequest, conflict, forbidden, notFound } from '../../errors.ts';
import { sha3_224Hex } from './signature.ts';
import { web3mqDraft } from './history.ts';
import { refuseDuplicates } from './conflicts.ts';

/*
 * The Web3MQ calls that cause notifications: friend requests and their acceptance, group
 * invitations and topic messages. Each change commits together with its notifications,
 * which count toward the recipient's unread badge.
 */

type Trx = Transaction<Database>;

async function displayName(trx: Trx, userId: string): Promise<string> {
  const user = await trx.selectFrom('users').select('nick').where('id', '=', userId).executeTakeFirst();
  return user?.nick || userId;
}

async function requireUser(trx: Trx, userId: string, what: string): Promise<void> {
  const user = await trx.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst();
  if (!user) throw notFound(`${what} ${userId} not found`);
}

async function areFriends(trx: Trx, a: string, b: string): Promise<boolean> {
  const row = await trx.selectFrom('friendships').select('user_id').where('user_id', '=', a).where('friend_id', '=', b).executeTakeFirst();
  return row !== undefined;
}

/** POST /api/contacts/add_friends/: a friend request, told to its target. */
export async function sendFriendRequest(notifier: Notifier, requesterId: string, targetId: string, content: string, fromSign: string) {
  if (requesterId === targetId) throw badRequest('target_userid is yourself');
  const duplicate = `a friend request to ${targetId} is already pending`;
  return refuseDuplicates(
    () =>
      notifier.transact(async (trx, emit) => {
        await requireUser(trx, targetId, 'target_userid');
        if (await areFriends(trx, requesterId, targetId)) throw conflict(`${targetId} is already your friend`);
        const pending = await trx
          .selectFrom('web3mq_friend_requests')
          .select('created_at')
          .where('requester_id', '=', requesterId)
          .where('target_id', '=', targetId)
          .executeTakeFirst();
        if (pending) throw conflict(duplicate);
        const now = Date.now();
        await trx
          .insertInto('web3mq_friend_requests')
          .values({ requester_id: requesterId, target_id: targetId, content, created_at: now })
          .execute();
        const name = await displayName(trx, requesterId);
        await emit(
          [
            web3mqDraft({
              to: targetId,
              type: 'system.friend_request',
              from: requesterId,
              title: `Friend request from ${name}`,
              content,
              fromSign,
            }),
          ],
          { now },
        );
      }),
    duplicate,
  );
}

/**
 * POST /api/contacts/friend_requests/ with action "agree": the two become friends (in the
 * Ozeki friends list too) and the requester is told.
 */
export async function agreeFriendRequest(notifier: Notifier, userId: string, requesterId: string, fromSign: string) {
  return notifier.transact(async (trx, emit) => {
    const deleted = await trx
      .deleteFrom('web3mq_friend_requests')
      .where('requester_id', '=', requesterId)
      .where('target_id', '=', userId)
      .executeTakeFirst();
    if (Number(deleted.numDeletedRows) === 0) throw notFound(`no pending friend request from ${requesterId}`);
    // A crossed request the other way is answered by the same agreement.
    await trx.deleteFrom('web3mq_friend_requests').where('requester_id', '=', userId).where('target_id', '=', requesterId).execute();
    await addFriendship(trx, userId, requesterId);
    const name = await displayName(trx, userId);
    await emit([
      web3mqDraft({
        to: requesterId,
        type: 'system.agree_friend_request',
        from: userId,
        title: `${name} accepted your friend request`,
        content: `${name} accepted your friend request`,
        fromSign,
      }),
    ]);
  });
}

/**
 * POST /api/group_invitation/: the members join the group and each new member is told.
 * The first invitation to an unknown group id founds it with the inviter as its first
 * member; after that only members may invite.
 */
export async function inviteToGroup(notifier: Notifier, inviterId: string, groupId: string, memberIds: string[], fromSign: string) {
  if (memberIds.includes(inviterId)) throw badRequest('members must not include yourself');
  return refuseDuplicates(
    () =>
      notifier.transact(async (trx, emit) => {
        for (const member of memberIds) await requireUser(trx, member, 'member');
        const members = await trx.selectFrom('web3mq_group_members').select('user_id').where('group_id', '=', groupId).execute();
        const current = new Set(members.map((m) => m.user_id));
        const now = Date.now();
        if (current.size > 0 && !current.has(inviterId)) throw forbidden(`you are not a member of group ${groupId}`);
        if (current.size === 0) {
          await trx
            .insertInto('web3mq_group_members')
            .values({ group_id: groupId, user_id: inviterId, invited_by: null, created_at: now })
            .execute();
        }
        const invited = memberIds.filter((id) => !current.has(id));
        if (invited.length === 0) return { invited };
        await trx
          .insertInto('web3mq_group_members')
          .values(invited.map((id) => ({ group_id: groupId, user_id: id, invited_by: inviterId, created_at: now })))
          .execute();
        const name = await displayName(trx, inviterId);
        await emit(
          invited.map((to) =>
            web3mqDraft({
              to,
              type: 'system.group_invitation',
              from: inviterId,
              title: `${name} invited you to a group`,
              content: groupId,
              fromSign,
            }),
          ),
          { now },
        );
        return { invited };
      }),
    `group ${groupId} was changed by another invitation at the same moment; try again`,
  );
}

/** POST /api/create_topic/: a topic owned by its creator, who alone publishes to it. */
export async function createTopic(notifier: Notifier, ownerId: string, name: string) {
  const topicId = `topic:${sha3_224Hex(ownerId + name + Date.now() + randomBytes(16).toString('hex'))}`;
  await notifier.store.db.insertInto('web3mq_topics').values({ id: topicId, owner_id: ownerId, name, created_at: Date.now() }).execute();
  return { topicid: topicId, topic_name: name };
}

/** POST /api/subscribe_topic/: subscribing twice is the same as once. */
export async function subscribeTopic(notifier: Notifier, userId: string, topicId: string) {
  const db = notifier.store.db;
  const topic = await db.selectFrom('web3mq_topics').select('id').where('id', '=', topicId).executeTakeFirst();
  if (!topic) throw notFound(`topic ${topicId} not found`);
  await db
    .insertInto('web3mq_subscriptions')
    .values({ topic_id: topicId, user_id: userId, created_at: Date.now() })
    .onConflict((oc) => oc.columns(['topic_id', 'user_id']).doNothing())
    .execute();
  return { topicid: topicId };
}

/** POST /api/publish_topic_message/: one subscription notification per subscriber. */
export async function publishTopicMessage(
  notifier: Notifier,
  publisherId: string,
  topicId: string,
  title: string,
  content: string,
  fromSign: string,
) {
  return notifier.transact(async (trx, emit) => {
    const topic = await trx.selectFrom('web3mq_topics').select(['id', 'owner_id']).where('id', '=', topicId).executeTakeFirst();
    if (!topic) throw notFound(`topic ${topicId} not found`);
    if (topic.owner_id !== publisherId) throw forbidden('only the creator of a topic may publish to it');
    const subscribers = await trx
      .selectFrom('web3mq_subscriptions')
      .select('user_id')
      .where('topic_id', '=', topicId)
      .where('user_id', '!=', publisherId)
      .execute();
    const now = Date.now();
    await emit(
      subscribers.map((s) => web3mqDraft({ to: s.user_id, type: 'subscription', from: publisherId, topicId, title, content, fromSign })),
      { now },
    );
    return { recipients: subscribers.length };
  });
}
