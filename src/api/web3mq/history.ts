import { sql, type Kysely } from 'kysely';
import type { Database } from '../../store/schema.ts';
import type { Notifier } from '../../notify/notifier.ts';
import type { Notification, NotificationDraft, NotificationType } from '../../model/notification.ts';
import { parseNotificationId } from '../../model/notification.ts';
import { rowToNotification } from '../../store/rows.ts';
import { feedEpochsAfter, userKeyOf } from '../../notify/feed.ts';
import { notFound } from '../../errors.ts';

type Db = Kysely<Database>;

/** The notice types of Web3MQ: the only types the history lists and the status call touches. */
export const NOTICE_TYPES = [
  'system.friend_request',
  'system.agree_friend_request',
  'system.group_invitation',
  'subscription',
] as const satisfies readonly NotificationType[];
export type NoticeType = (typeof NOTICE_TYPES)[number];

export function isNoticeType(value: string): value is NoticeType {
  return (NOTICE_TYPES as readonly string[]).includes(value);
}

/** The largest page the history hands out. */
export const MAX_PAGE_SIZE = 100;
/** Pages beyond this are refused rather than scanned. */
export const MAX_PAGE = 10_000;
/** Message ids one status call may name. */
export const MAX_STATUS_MESSAGES = 100;

/** What a Web3MQ notification keeps in `notifications.data`. */
interface Web3mqData {
  /** The signature of the call that caused it, shown as `from_sign`. */
  from_sign?: string;
}

/**
 * A Web3MQ notification for the shared feed. A subscription notification's topic is the
 * topic id, kept in `conversation_id`; a system notification's topic is the recipient's
 * own userid, so it keeps no conversation id.
 */
export function web3mqDraft(n: {
  to: string;
  type: NoticeType;
  from: string;
  topicId?: string;
  title: string;
  content: string;
  fromSign: string;
}): NotificationDraft {
  const data: Web3mqData = { from_sign: n.fromSign };
  return {
    userId: n.to,
    type: n.type,
    conversationId: n.topicId ?? null,
    senderId: n.from,
    title: n.title,
    body: n.content,
    data: data as Record<string, unknown>,
    // Every Web3MQ notification counts toward the recipient's unread badge until read.
    unread: 1,
  };
}

/** One history entry in the shape of Web3MQ's Notification History document; `status` is its read status. */
export function historyItem(n: Notification, status: string | null) {
  const data = n.data as Web3mqData;
  return {
    messageid: n.id,
    from: n.senderId ?? '',
    from_sign: data.from_sign ?? '',
    topic: n.conversationId ?? n.userId,
    cipher_suite: 'NONE',
    payload_type: 'application/json; charset=utf-8',
    // Web3MQ's SDK tells invitations apart by payload.type, so it carries the notice type.
    payload: { title: n.title, content: n.body, type: n.type },
    timestamp: n.createdAt,
    version: 1,
    read: status === 'read',
  };
}

export interface HistoryQuery {
  userId: string;
  topic?: string;
  noticeType?: NoticeType;
  page: number;
  size: number;
}

/** A user's Web3MQ notifications, newest first; `total` counts every entry that matches. */
export async function readHistory(db: Db, q: HistoryQuery) {
  const key = userKeyOf(q.userId);
  let filtered = db
    .selectFrom('notifications')
    .where(feedEpochsAfter(key, 0))
    .where('user_key', '=', key)
    .where('type', 'in', q.noticeType ? [q.noticeType] : [...NOTICE_TYPES]);
  if (q.topic !== undefined) {
    filtered = q.topic === q.userId ? filtered.where('conversation_id', 'is', null) : filtered.where('conversation_id', '=', q.topic);
  }
  const [{ total }] = await filtered.select((eb) => eb.fn.countAll<number>().as('total')).execute();
  const rows = await filtered
    .selectAll()
    .orderBy('seq', 'desc')
    .limit(q.size)
    .offset((q.page - 1) * q.size)
    .execute();
  return { total: Number(total), result: rows.map((row) => historyItem(rowToNotification(row, q.userId), row.status)) };
}

export type NotificationStatus = 'delivered' | 'read';

/**
 * Marks a user's Web3MQ notifications delivered or read. Reading lowers the badge by the
 * number that were unread, with one clean push; a notification already read stays read and
 * is not counted again, so repeating the call changes nothing. An id that is not one of the
 * caller's Web3MQ notifications refuses the whole call.
 */
export async function changeStatus(
  notifier: Notifier,
  userId: string,
  messageIds: string[],
  status: NotificationStatus,
): Promise<{ changed: number }> {
  return notifier.transact(async (trx, emit) => {
    const user = await trx.selectFrom('users').select('key').where('id', '=', userId).executeTakeFirst();
    if (!user) throw notFound(`no user ${userId}`);
    // An id names its user's key and a sequence number: one of another user is not the caller's.
    const seqs: number[] = [];
    for (const id of messageIds) {
      const named = parseNotificationId(id);
      if (!named || named.userKey !== user.key) throw notFound(`no notification ${id} in your history`);
      seqs.push(named.seq);
    }
    const owned = await trx
      .selectFrom('notifications')
      .select('seq')
      .where(feedEpochsAfter(sql<number>`${user.key}`, Math.min(...seqs) - 1))
      .where('user_key', '=', user.key)
      .where('type', 'in', [...NOTICE_TYPES])
      .where('seq', 'in', seqs)
      .execute();
    if (owned.length !== new Set(seqs).size) {
      const known = new Set(owned.map((r) => r.seq));
      const missing = messageIds[seqs.findIndex((seq) => !known.has(seq))];
      throw notFound(`no notification ${missing} in your history`);
    }
    const now = Date.now();
    // A read notification is never set back to delivered.
    const result = await trx
      .updateTable('notifications')
      .set({ status, status_at: now })
      .where(feedEpochsAfter(sql<number>`${user.key}`, Math.min(...seqs) - 1))
      .where('user_key', '=', user.key)
      .where('seq', 'in', seqs)
      .where((eb) => (status === 'read' ? eb.or([eb('status', 'is', null), eb('status', '!=', 'read')]) : eb('status', 'is', null)))
      .executeTakeFirst();
    const changed = Number(result.numUpdatedRows);
    if (status === 'read' && changed > 0) {
      await emit(
        [{ userId, type: 'clean', title: 'Read', silent: true, data: { read: changed, messages: messageIds }, unread: -changed }],
        { now },
      );
    }
    return { changed };
  });
}
