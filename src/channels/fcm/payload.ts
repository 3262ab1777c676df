import type { Notification } from '../../model/notification.ts';
import { PayloadCache } from '../payload-cache.ts';
import { collapseKeyOf, heraldFields, isNormalPriority, pushExpiresAt, pushKindOf } from '../push-common.ts';

/** What is left of the push's time to live, in whole seconds (FCM's android.ttl). */
function ttlSecondsOf(n: Notification, now: number): number {
  return Math.max(0, Math.floor((pushExpiresAt(n) - now) / 1000));
}

/** The FCM HTTP v1 `message` for a notification and a registration token. */
export function fcmMessage(n: Notification, token: string, now = Date.now()): Record<string, unknown> {
  const kind = pushKindOf(n);
  const ttlSeconds = ttlSecondsOf(n, now);
  const collapseKey = collapseKeyOf(n.conversationId);
  const android: Record<string, unknown> = {
    priority: kind === 'background' || isNormalPriority(n) ? 'normal' : 'high',
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

/** How every messages:send body starts: `message` holds `token` first (see fcmMessage). */
const BODY_START = '{"message":{"token":';
/** The same with an empty token, as JSON.stringify writes it. */
const EMPTY_TOKEN_START = `${BODY_START}""`;

/** All of a notification's body after its token, for the second of TTL it was built for. */
interface BodyRest {
  ttlSeconds: number;
  rest: string;
}

/**
 * The messages:send bodies of a notification's messages, which differ only in their token:
 * the rest is serialised once per notification (and again when its TTL, in whole seconds,
 * has moved on), and each device's body is the same text as
 * JSON.stringify({ message: fcmMessage(n, token) }). HERALD_NO_PUSH_PAYLOAD_CACHE=1
 * serialises every message whole.
 */
export class FcmBodies {
  private readonly rests = new PayloadCache<BodyRest>(() => ({ ttlSeconds: -1, rest: '' }));

  body(n: Notification, token: string, now = Date.now()): string {
    const built = this.rests.get(n);
    const ttlSeconds = ttlSecondsOf(n, now);
    if (built.ttlSeconds !== ttlSeconds) {
      built.rest = JSON.stringify({ message: fcmMessage(n, '', now) }).slice(EMPTY_TOKEN_START.length);
      built.ttlSeconds = ttlSeconds;
    }
    return BODY_START + JSON.stringify(token) + built.rest;
  }
}
