import { createHash } from 'node:crypto';
import type { Notification } from '../model/notification.ts';
import { PUSH_TIME_TO_LIVE_MS } from './feed.ts';

/**
 * What a mobile push says, built from the stored notification at send time. Message
 * contents are encrypted by the clients, so a push says who and how many, never what.
 */

/** How a push should behave on the device. */
export type PushKind =
  /** Shown to the user: title, body, badge, sound. */
  | 'alert'
  /** Only the badge changes: the clean push after the user has read. */
  | 'badge'
  /** Wakes the app without showing anything (muted conversation, sender's own devices). */
  | 'background';

export function pushKindOf(n: Notification): PushKind {
  if (n.type === 'clean') return 'badge';
  if (n.silent) return 'background';
  return 'alert';
}

/** The moment after which the push is no longer worth delivering. */
export function pushExpiresAt(n: Notification): number {
  return n.createdAt + PUSH_TIME_TO_LIVE_MS;
}

/**
 * A provider-safe collapse key for a conversation. APNs: apns-collapse-id is at most 64
 * bytes, so a longer id is replaced by its SHA-256 (64 hex characters).
 */
export function collapseKeyOf(conversationId: string | null): string | undefined {
  if (!conversationId) return undefined;
  if (Buffer.byteLength(conversationId) <= 64) return conversationId;
  return createHash('sha256').update(conversationId).digest('hex');
}

/** The keys Herald puts beside `aps` (APNs) or into `data` (FCM), so apps can deduplicate. */
function heraldFields(n: Notification): Record<string, string> {
  const fields: Record<string, string> = {
    id: n.id,
    type: n.type,
    seq: String(n.seq),
    badge: String(n.badge),
  };
  if (n.conversationId) fields.conversationid = n.conversationId;
  if (n.senderId) fields.sender = n.senderId;
  return fields;
}

export interface ApnsPush {
  pushType: 'alert' | 'background';
  /** APNs: 10 = immediately, 5 = when power allows (required for background pushes). */
  priority: 10 | 5;
  /** Unix seconds (APNs apns-expiration). */
  expiration: number;
  collapseId?: string;
  payload: string;
}

/** The APNs request for a notification: aps.alert/badge/sound/thread-id, Herald's keys beside aps. */
export function apnsPush(n: Notification): ApnsPush {
  const kind = pushKindOf(n);
  const aps: Record<string, unknown> = { badge: n.badge };
  if (kind === 'alert') {
    aps.alert = { title: n.title, body: n.body };
    aps.sound = 'default';
  }
  if (kind === 'background') aps['content-available'] = 1;
  if (n.conversationId) aps['thread-id'] = n.conversationId;
  const payload = JSON.stringify({ aps, ...heraldFields(n) });
  return {
    // APNs: a badge-only push is an alert push without an alert; a background push must
    // have priority 5.
    pushType: kind === 'background' ? 'background' : 'alert',
    priority: kind === 'alert' ? 10 : 5,
    expiration: Math.floor(pushExpiresAt(n) / 1000),
    collapseId: kind === 'alert' ? collapseKeyOf(n.conversationId) : undefined,
    payload,
  };
}

/** The FCM HTTP v1 `message` for a notification and a registration token. */
export function fcmMessage(n: Notification, token: string, now = Date.now()): Record<string, unknown> {
  const kind = pushKindOf(n);
  const ttlSeconds = Math.max(0, Math.floor((pushExpiresAt(n) - now) / 1000));
  const collapseKey = collapseKeyOf(n.conversationId);
  const android: Record<string, unknown> = {
    priority: kind === 'background' ? 'normal' : 'high',
    ttl: `${ttlSeconds}s`,
  };
  if (collapseKey) android.collapse_key = collapseKey;
  const message: Record<string, unknown> = { token, data: heraldFields(n), android };
  if (kind === 'alert') {
    message.notification = { title: n.title, body: n.body };
    android.notification = {
      ...(collapseKey ? { tag: collapseKey } : {}),
      notification_count: n.badge,
      sound: 'default',
    };
  }
  return message;
}

/** A provider's Retry-After header (seconds or an HTTP date) in milliseconds from now. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
