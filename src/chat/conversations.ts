import type { Kysely, Transaction } from 'kysely';
import type { ConversationsTable, Database, ParticipantsTable } from '../store/schema.ts';
import { Statement } from '../store/statement.ts';
import type { Emit, Notifier } from '../notify/notifier.ts';
import type { NotificationDraft } from '../model/notification.ts';
import { badRequest, forbidden, notFound } from '../errors.ts';
import { directConversationId, groupConversationId } from './ids.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** The most participants one conversation may have. */
export const MAX_PARTICIPANTS = 10_000;

/** A conversation list entry, in the Ozeki wire shape. */
export interface ConversationEntry {
  id: string;
  isgroup: boolean;
  participantids: string[];
  participants: Array<{ userid: string; username: string }>;
  displayname: string;
  lastmessageid: string;
  lastreportid: string;
  lastaccess: number;
  /** The viewer's unread messages in this conversation. */
  unread: number;
  secret: string;
  instance: string;
  mutedby: string[];
  favoriteby: string[];
  hiddenby: string[];
  properties: Array<{
    userid: string;
    ismuted: boolean;
    isfavorite: boolean;
    hideid: string;
    listitembackgroundcolor: string;
  }>;
}

export async function conversationEntries(db: Db, conversationIds: string[], viewerId: string): Promise<ConversationEntry[]> {
  if (conversationIds.length === 0) return [];
  const conversations = await db.selectFrom('conversations').selectAll().where('id', 'in', conversationIds).execute();
  const rows = await db
    .selectFrom('participants')
    .innerJoin('users', 'users.id', 'participants.user_id')
    .select([
      'participants.conversation_id',
      'participants.user_id',
      'participants.is_muted',
      'participants.is_favorite',
      'participants.hide_id',
      'participants.background_color',
      'participants.last_access_at',
      'participants.unread_count',
      'users.name',
    ])
    .where('participants.conversation_id', 'in', conversationIds)
    .orderBy('participants.user_id')
    .execute();
  const byConversation = new Map<string, typeof rows>();
  for (const row of rows) {
    const list = byConversation.get(row.conversation_id) ?? [];
    list.push(row);
    byConversation.set(row.conversation_id, list);
  }
  return conversations.map((c) => {
    const members = byConversation.get(c.id) ?? [];
    const viewer = members.find((m) => m.user_id === viewerId);
    const others = members.filter((m) => m.user_id !== viewerId);
    return {
      id: c.id,
      isgroup: c.is_group === 1,
      participantids: members.map((m) => m.user_id),
      participants: members.map((m) => ({ userid: m.user_id, username: m.name })),
      displayname: c.display_name || others.map((m) => m.name).join(', '),
      lastmessageid: c.last_message_id,
      lastreportid: c.last_report_id,
      lastaccess: Math.floor((viewer?.last_access_at ?? 0) / 1000),
      unread: viewer?.unread_count ?? 0,
      secret: c.secret,
      instance: c.instance,
      mutedby: members.filter((m) => m.is_muted === 1).map((m) => m.user_id),
      favoriteby: members.filter((m) => m.is_favorite === 1).map((m) => m.user_id),
      hiddenby: members.filter((m) => m.hide_id !== '').map((m) => m.user_id),
      properties: members.map((m) => ({
        userid: m.user_id,
        ismuted: m.is_muted === 1,
        isfavorite: m.is_favorite === 1,
        hideid: m.hide_id,
        listitembackgroundcolor: m.background_color,
      })),
    };
  });
}

export async function conversationEntry(db: Db, conversationId: string, viewerId: string): Promise<ConversationEntry> {
  const [entry] = await conversationEntries(db, [conversationId], viewerId);
  if (!entry) throw notFound(`no such conversation: ${conversationId}`);
  return entry;
}

export async function listConversations(db: Db, userId: string): Promise<ConversationEntry[]> {
  const ids = await db
    .selectFrom('participants')
    .innerJoin('conversations', 'conversations.id', 'participants.conversation_id')
    .select('participants.conversation_id')
    .where('participants.user_id', '=', userId)
    .orderBy('conversations.changed_at', 'desc')
    .execute();
  const entries = await conversationEntries(
    db,
    ids.map((r) => r.conversation_id),
    userId,
  );
  const order = new Map(ids.map((r, i) => [r.conversation_id, i]));
  return entries.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
}

/** The conversation, and the caller's place in it (all null when the caller is not in it). */
const PARTICIPANT_OF = new Statement<
  ConversationsTable & { [K in Exclude<keyof ParticipantsTable, 'conversation_id'>]: ParticipantsTable[K] | null }
>(
  `SELECT c.id, c.is_group, c.display_name, c.secret, c.instance, c.created_by, c.last_message_id, c.last_report_id,
          c.changed_at, c.created_at, p.user_id, p.is_muted, p.is_favorite, p.hide_id, p.background_color,
          p.unread_count, p.last_access_at, p.list_changed_at, p.cleared_before_seq
   FROM conversations c LEFT JOIN participants p ON p.conversation_id = c.id AND p.user_id = ?
   WHERE c.id = ?`,
);

/** Only participants may read or write a conversation. */
export async function requireParticipant(db: Db, conversationId: string, userId: string) {
  // One query for both: the conversation, and the caller's place in it if any.
  const row = await PARTICIPANT_OF.first(db, [userId, conversationId]);
  if (!row) throw notFound(`no such conversation: ${conversationId}`);
  if (row.user_id === null) throw forbidden('you are not a participant of this conversation');
  const conversation = {
    id: row.id,
    is_group: row.is_group,
    display_name: row.display_name,
    secret: row.secret,
    instance: row.instance,
    created_by: row.created_by,
    last_message_id: row.last_message_id,
    last_report_id: row.last_report_id,
    changed_at: row.changed_at,
    created_at: row.created_at,
  };
  const participant = {
    conversation_id: row.id,
    user_id: row.user_id,
    is_muted: row.is_muted!,
    is_favorite: row.is_favorite!,
    hide_id: row.hide_id!,
    background_color: row.background_color!,
    unread_count: row.unread_count!,
    last_access_at: row.last_access_at!,
    list_changed_at: row.list_changed_at!,
    cleared_before_seq: row.cleared_before_seq!,
  };
  return { conversation, participant };
}

export function listChanged(userIds: string[], conversationId: string, actorId: string): NotificationDraft[] {
  return userIds.map((userId) => ({
    userId,
    type: 'conversationlist' as const,
    conversationId,
    senderId: actorId,
    title: 'Conversation list changed',
    silent: true,
  }));
}

export interface CreateConversation {
  participantIds: string[];
  displayName?: string;
  instance?: string;
  secret?: string;
}

/**
 * Starts a conversation. With one other user it is their one-to-one conversation, the
 * same one whoever starts it; with two or more others it is a new group.
 */
export async function createConversation(notifier: Notifier, callerId: string, input: CreateConversation) {
  const others = [...new Set(input.participantIds.map((id) => id.toLowerCase()))].filter((id) => id !== callerId);
  if (others.length === 0) throw badRequest('participantids must name at least one other user');
  if (others.length + 1 > MAX_PARTICIPANTS) throw badRequest(`a conversation holds at most ${MAX_PARTICIPANTS} users`);
  return notifier.transact(async (trx, emit) => {
    const found = await trx.selectFrom('users').select('id').where('id', 'in', others).execute();
    if (found.length !== others.length) {
      const known = new Set(found.map((r) => r.id));
      throw notFound(`no such user: ${others.filter((id) => !known.has(id)).join(', ')}`);
    }
    const isGroup = others.length > 1;
    const id = isGroup ? groupConversationId() : directConversationId(callerId, others[0]);
    const members = [callerId, ...others];
    const now = Date.now();
    const existing = await trx.selectFrom('conversations').select('id').where('id', '=', id).executeTakeFirst();
    if (!existing) {
      await trx
        .insertInto('conversations')
        .values({
          id,
          is_group: isGroup ? 1 : 0,
          display_name: input.displayName ?? '',
          secret: input.secret ?? '',
          instance: input.instance ?? '',
          created_by: callerId,
          last_message_id: '',
          last_report_id: '',
          changed_at: now,
          created_at: now,
        })
        .execute();
      for (let i = 0; i < members.length; i += 500) {
        await trx
          .insertInto('participants')
          .values(
            members.slice(i, i + 500).map((userId) => ({
              conversation_id: id,
              user_id: userId,
              is_muted: 0,
              is_favorite: 0,
              hide_id: '',
              background_color: '',
              unread_count: 0,
              last_access_at: userId === callerId ? now : 0,
              list_changed_at: now,
              cleared_before_seq: 0,
            })),
          )
          .execute();
      }
      await emit(listChanged(members, id, callerId));
    }
    return conversationEntry(trx, id, callerId);
  });
}

/** Sets a reader's unread count of one conversation to zero; sends the clean push when it changed. */
export async function markConversationRead(
  trx: Transaction<Database>,
  emit: Emit,
  userId: string,
  conversationId: string,
  now = Date.now(),
): Promise<void> {
  const participant = await trx
    .selectFrom('participants')
    .select('unread_count')
    .where('conversation_id', '=', conversationId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  const unread = participant?.unread_count ?? 0;
  if (unread === 0) return;
  await trx
    .updateTable('participants')
    .set({ unread_count: 0, last_access_at: now })
    .where('conversation_id', '=', conversationId)
    .where('user_id', '=', userId)
    .execute();
  await emit([{ userId, type: 'clean', conversationId, title: 'Read', silent: true, data: { read: unread }, unread: -unread }], { now });
}

export type PropertyAction = 'favorite' | 'unfavorite' | 'mute' | 'unmute' | 'hide' | 'unhide' | 'setlistitembackgroundcolor' | 'clear';

/** The per-user list properties of a conversation; each change is a list change for that user. */
export async function setConversationProperty(
  notifier: Notifier,
  userId: string,
  conversationId: string,
  action: PropertyAction,
  value?: string,
) {
  return notifier.transact(async (trx, emit) => {
    await requireParticipant(trx, conversationId, userId);
    const now = Date.now();
    const changes: Partial<Database['participants']> = { list_changed_at: now };
    switch (action) {
      case 'favorite':
        changes.is_favorite = 1;
        break;
      case 'unfavorite':
        changes.is_favorite = 0;
        break;
      case 'mute':
        changes.is_muted = 1;
        break;
      case 'unmute':
        changes.is_muted = 0;
        break;
      case 'hide':
        changes.hide_id = value || 'hidden';
        break;
      case 'unhide':
        changes.hide_id = '';
        break;
      case 'setlistitembackgroundcolor':
        changes.background_color = value ?? '';
        break;
      case 'clear': {
        const last = await trx
          .selectFrom('messages')
          .select((eb) => eb.fn.max('seq').as('seq'))
          .where('conversation_id', '=', conversationId)
          .executeTakeFirst();
        changes.cleared_before_seq = Number(last?.seq ?? 0);
        await markConversationRead(trx, emit, userId, conversationId, now);
        break;
      }
    }
    await trx
      .updateTable('participants')
      .set(changes)
      .where('conversation_id', '=', conversationId)
      .where('user_id', '=', userId)
      .execute();
    await emit(listChanged([userId], conversationId, userId), { now });
    return conversationEntry(trx, conversationId, userId);
  });
}
