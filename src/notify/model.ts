/** What a recipient is told about. Chat types first, then the Web3MQ ones. */
export type NotificationType =
  | 'message'
  | 'clean'
  | 'availability'
  | 'conversationlist'
  | 'system.friend_request'
  | 'system.agree_friend_request'
  | 'system.group_invitation'
  | 'subscription'
  | 'test';

/** One entry of a user's durable feed, as stored and as handed to every channel. */
export interface Notification {
  id: string;
  userId: string;
  /** Per-user sequence number: strictly increasing, without gaps. */
  seq: number;
  type: NotificationType;
  conversationId: string | null;
  senderId: string | null;
  /** Who and how many, never message content: "3 messages from Alice". */
  title: string;
  body: string;
  /** The user's total unread count after this notification. */
  badge: number;
  /** Update feed and badge without alerting (muted conversation, sender's own devices). */
  silent: boolean;
  data: Record<string, unknown>;
  createdAt: number;
}

/** A notification before it has an id, a sequence number and a badge. */
export interface NotificationDraft {
  userId: string;
  type: NotificationType;
  conversationId?: string | null;
  senderId?: string | null;
  title: string;
  body?: string;
  silent?: boolean;
  data?: Record<string, unknown>;
  /** How much this notification moves the recipient's unread total (0 when unset). */
  unread?: number;
}

/** Types that reach push-token devices (APNs, FCM, Web Push) through the outbox. */
export const PUSHED_TYPES: ReadonlySet<NotificationType> = new Set([
  'message',
  'clean',
  'system.friend_request',
  'system.agree_friend_request',
  'system.group_invitation',
  'subscription',
  'test',
]);

/**
 * The JSON frame of a notification on the live channels (WebSocket, UDP). `clean` is
 * its own frame type because clients treat it differently: it only resets the badge.
 */
export function toFrame(n: Notification): Record<string, unknown> {
  if (n.type === 'clean') {
    return {
      type: 'clean',
      seq: n.seq,
      id: n.id,
      badge: n.badge,
      conversationid: n.conversationId,
      title: n.title,
      created: n.createdAt,
    };
  }
  return {
    type: 'notification',
    seq: n.seq,
    id: n.id,
    kind: n.type,
    conversationid: n.conversationId,
    sender: n.senderId,
    title: n.title,
    body: n.body,
    badge: n.badge,
    silent: n.silent,
    created: n.createdAt,
    data: n.data,
  };
}

/** Serialised once per notification and shared by every live connection of its user. */
export function frameText(n: Notification): string {
  return JSON.stringify(toFrame(n));
}
