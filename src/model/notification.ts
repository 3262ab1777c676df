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
  | 'test'
  /** A kind of another backend's, sent through the gateway API: namespaced, like `app.invoice`. */
  | CustomKind;

/** A kind named by another backend: at least two dot-separated parts (see isCustomKind). */
export type CustomKind = `${string}.${string}`;

/** How a push may be delivered: its time to live and its priority (absent: Herald's defaults). */
export interface PushOptions {
  /** Seconds the push is worth delivering; the default is a day. */
  ttl?: number;
  /** `normal` lets the provider save the device's battery; `high` (the default for alerts) delivers at once. */
  priority?: 'high' | 'normal';
}

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
  /** Set only when the sender asked for other than the defaults (the gateway API). */
  push?: PushOptions;
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
  /**
   * Sets the recipient's badge to this number instead of moving it by `unread`: for a source
   * that keeps the count itself (a Matrix homeserver sends its own unread total, a backend its badge).
   */
  badge?: number;
  push?: PushOptions;
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

/** Built-in types that begin like a namespace (`system.…`) are Herald's, not a backend's. */
const CUSTOM_KIND = /^(?!system\.)[a-z][a-z0-9_-]{0,31}(\.[a-z0-9][a-z0-9_-]{0,31}){1,3}$/;

/** True for a backend's own namespaced kind (`app.invoice`), never for one of Herald's types. */
export function isCustomKind(value: string): value is CustomKind {
  return value.length <= 64 && CUSTOM_KIND.test(value);
}

/** True when notifications of this type reach push-token devices through the outbox. */
export function isPushedType(type: NotificationType): boolean {
  return PUSHED_TYPES.has(type) || isCustomKind(type);
}

/**
 * True when a push of this notification alerts the user (neither the clean badge push nor a
 * silent one): the same rule as pushKindOf's `alert`, for the outbox's hold.
 */
export function alertsOnPush(n: Pick<Notification, 'type' | 'silent'>): boolean {
  return n.type !== 'clean' && !n.silent;
}

/** True when a push of this notification may show nothing: pushKindOf's `background` (clean pushes set the badge). */
export function isBackgroundPush(n: Pick<Notification, 'type' | 'silent'>): boolean {
  return n.type !== 'clean' && n.silent;
}

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

/** The JSON text of each `data` object once made. */
const dataTexts = new WeakMap<object, string>();

/**
 * The JSON text of a notification's `data`, made once and shared by its feed row and its
 * frame, and by every notification that shares the object (the recipients of one message
 * with the same unread count do). A `data` object is not changed once made.
 */
export function dataText(n: Notification): string {
  let text = dataTexts.get(n.data);
  if (text === undefined) {
    text = JSON.stringify(n.data);
    dataTexts.set(n.data, text);
  }
  return text;
}

/**
 * JSON string literals, remembering the last one: the notifications of one message to a
 * group share their conversation, sender and body, so all but the first are answered from
 * memory.
 */
class Quoter {
  private value: string | null = null;
  private text = 'null';

  quote(value: string | null): string {
    if (value !== this.value) {
      this.value = value;
      this.text = value === null ? 'null' : JSON.stringify(value);
    }
    return this.text;
  }
}
const quoted = { type: new Quoter(), conversation: new Quoter(), sender: new Quoter(), title: new Quoter(), body: new Quoter() };

/**
 * Serialised once per notification and shared by every live connection of its user. The
 * text is `JSON.stringify(toFrame(n))`, put together from its parts: a fan-out makes one per
 * recipient, and building the object first costs about twice as much. Ids are Herald's own
 * (hexadecimal and dashes), so they need no escaping.
 */
export function frameText(n: Notification): string {
  if (n.type === 'clean') return JSON.stringify(toFrame(n));
  return (
    `{"type":"notification","seq":${n.seq},"id":"${n.id}","kind":${quoted.type.quote(n.type)}` +
    `,"conversationid":${quoted.conversation.quote(n.conversationId)},"sender":${quoted.sender.quote(n.senderId)}` +
    `,"title":${quoted.title.quote(n.title)},"body":${quoted.body.quote(n.body)},"badge":${n.badge},"silent":${n.silent}` +
    `,"created":${n.createdAt},"data":${dataText(n)}}`
  );
}

/**
 * A notification's id names its place in the feed: its user's key and its sequence number,
 * laid out as a UUID (version 8, Herald's own layout) `kkkkkkkk-kkkk-8000-8sss-ssssssssssss`,
 * 48 bits of user key and 60 of sequence. The feed needs no index of ids, and an id is found
 * through the feed's own (user key, sequence) index. Users are never renumbered, so an id
 * stays the same for as long as its notification exists.
 */
export function notificationId(userKey: number, seq: number): string {
  const key = userKey.toString(16).padStart(12, '0');
  const low = (seq % 0x1000000000000).toString(16).padStart(12, '0');
  const high = Math.floor(seq / 0x1000000000000)
    .toString(16)
    .padStart(3, '0');
  return `${key.slice(0, 8)}-${key.slice(8)}-8000-8${high}-${low}`;
}

const NOTIFICATION_ID = /^([0-9a-f]{8})-([0-9a-f]{4})-8000-8([0-9a-f]{3})-([0-9a-f]{12})$/;

/** The user key and sequence number an id names, or undefined when it is no notification id. */
export function parseNotificationId(id: string): { userKey: number; seq: number } | undefined {
  const match = NOTIFICATION_ID.exec(id);
  if (!match) return undefined;
  return { userKey: parseInt(match[1] + match[2], 16), seq: parseInt(match[3], 16) * 0x1000000000000 + parseInt(match[4], 16) };
}

/** The user key in a notification id made by notificationId: what parseNotificationId says, without the pattern. */
export function userKeyOfId(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
