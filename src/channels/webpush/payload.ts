import { createHash } from 'node:crypto';
import type { Notification } from '../../model/notification.ts';
import { isNormalPriority, pushExpiresAt, pushKindOf, sourceFields } from '../push-common.ts';

/**
 * The Topic for a conversation: the first 24 bytes of its SHA-256, base64url (32 characters,
 * the most RFC 8030 §5.4 allows, all from the URL- and filename-safe alphabet).
 */
export function topicOf(conversationId: string | null): string | undefined {
  if (!conversationId) return undefined;
  return createHash('sha256').update(conversationId).digest().subarray(0, 24).toString('base64url');
}

/** The JSON the service worker receives in its `push` event (event.data.json()). */
export function webPushPayload(n: Notification): Record<string, unknown> {
  // A clean push carries its place in the feed too: a worker closes only what came before it
  // and ignores a push older than one it has shown (push services do not keep order).
  if (n.type === 'clean')
    return { ...sourceFields(n), type: 'clean', badge: n.badge, conversationid: n.conversationId, seq: n.seq, id: n.id };
  return {
    ...sourceFields(n),
    type: n.type,
    title: n.title,
    body: n.body,
    badge: n.badge,
    conversationid: n.conversationId,
    seq: n.seq,
    id: n.id,
    ...(n.silent ? { silent: true } : {}),
  };
}

export type Urgency = 'very-low' | 'low' | 'normal' | 'high';

export interface WebPushRequest {
  /** Seconds the push service may hold the message (RFC 8030 §5.2). */
  ttl: number;
  urgency: Urgency;
  topic?: string;
  payload: string;
}

/** What Herald asks the push service for: an alert now, a badge reset soon, a silent update when convenient. */
export function webPushRequest(n: Notification, now = Date.now()): WebPushRequest {
  const kind = pushKindOf(n);
  return {
    ttl: Math.max(0, Math.floor((pushExpiresAt(n) - now) / 1000)),
    urgency: kind === 'alert' ? (isNormalPriority(n) ? 'normal' : 'high') : kind === 'badge' ? 'normal' : 'low',
    topic: topicOf(n.conversationId),
    payload: JSON.stringify(webPushPayload(n)),
  };
}
