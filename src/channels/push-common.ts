import { createHash } from 'node:crypto';
import type { Notification } from '../model/notification.ts';
import { PUSH_TIME_TO_LIVE_MS } from '../notify/feed.ts';

/*
 * What every push provider's payload shares, built from the stored notification at send
 * time. Message contents are encrypted by the clients, so a push says who and how many,
 * never what. Each provider's own payload sits in its folder (apns/, fcm/, webpush/).
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
  return n.createdAt + (n.push?.ttl === undefined ? PUSH_TIME_TO_LIVE_MS : n.push.ttl * 1000);
}

/** True when the sender let the provider deliver an alert when it suits the device's battery. */
export function isNormalPriority(n: Notification): boolean {
  return n.push?.priority === 'normal';
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

/**
 * The keys a notification's source asks its pushes to carry (`data.push`, string values
 * only): a Matrix event's room and event ids, which the app needs to fetch the event.
 */
export function sourceFields(n: Notification): Record<string, string> {
  const push = n.data.push;
  if (!push || typeof push !== 'object') return {};
  const fields: Record<string, string> = {};
  for (const [key, value] of Object.entries(push)) if (typeof value === 'string') fields[key] = value;
  return fields;
}

/**
 * The keys Herald puts beside `aps` (APNs) or into `data` (FCM), so apps can deduplicate,
 * after those of the notification's source (Herald's own win a clash).
 */
export function heraldFields(n: Notification): Record<string, string> {
  const fields: Record<string, string> = {
    ...sourceFields(n),
    id: n.id,
    type: n.type,
    seq: String(n.seq),
    badge: String(n.badge),
  };
  if (n.conversationId) fields.conversationid = n.conversationId;
  if (n.senderId) fields.sender = n.senderId;
  return fields;
}

/** A provider's Retry-After header (seconds or an HTTP date) in milliseconds from now. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
