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

/**
 * The JSON text of a notification's `data`, made once and shared by its feed row and its
 * frame (the two would otherwise serialise it twice per recipient).
 */
const dataTexts = new WeakMap<Notification, string>();
export function dataText(n: Notification): string {
  let text = dataTexts.get(n);
  if (text === undefined) {
    text = JSON.stringify(n.data);
    dataTexts.set(n, text);
  }
  return text;
}

const quote = (value: string | null) => (value === null ? 'null' : JSON.stringify(value));

/**
 * Serialised once per notification and shared by every live connection of its user. The
 * text is `JSON.stringify(toFrame(n))`, put together from its parts: a fan-out makes one per
 * recipient, and building the object first costs about twice as much.
 */
export function frameText(n: Notification): string {
  if (n.type === 'clean') return JSON.stringify(toFrame(n));
  return (
    `{"type":"notification","seq":${n.seq},"id":${quote(n.id)},"kind":${quote(n.type)}` +
    `,"conversationid":${quote(n.conversationId)},"sender":${quote(n.senderId)},"title":${quote(n.title)}` +
    `,"body":${quote(n.body)},"badge":${n.badge},"silent":${n.silent},"created":${n.createdAt},"data":${dataText(n)}}`
  );
}
