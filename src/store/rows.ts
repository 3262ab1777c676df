import type { NotificationsTable } from './schema.ts';
import { dataText, notificationId, type Notification, type PushOptions } from '../model/notification.ts';

/** A feed row's own fields (its epoch is where the store put it). */
export type FeedRow = Omit<NotificationsTable, 'epoch'>;

/** The feed row of a notification that was just made: neither delivered nor read yet. */
export function notificationToRow(n: Notification, userKey: number): FeedRow {
  return {
    user_key: userKey,
    seq: n.seq,
    type: n.type,
    conversation_id: n.conversationId,
    sender_id: n.senderId,
    title: n.title,
    body: n.body,
    badge: n.badge,
    silent: n.silent ? 1 : 0,
    data: dataText(n),
    status: null,
    status_at: null,
    created_at: n.createdAt,
    push_options: n.push ? JSON.stringify(n.push) : null,
  };
}

/** A stored feed row of the user `userId` as the notification it records. */
export function rowToNotification(row: FeedRow, userId: string): Notification {
  return {
    id: notificationId(row.user_key, row.seq),
    userId,
    seq: row.seq,
    type: row.type as Notification['type'],
    conversationId: row.conversation_id,
    senderId: row.sender_id,
    title: row.title,
    body: row.body,
    badge: row.badge,
    silent: row.silent === 1,
    data: JSON.parse(row.data) as Record<string, unknown>,
    createdAt: row.created_at,
    ...(row.push_options !== null && row.push_options !== undefined && { push: JSON.parse(row.push_options) as PushOptions }),
  };
}
