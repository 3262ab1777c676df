import type { Notification } from '../../model/notification.ts';
import { collapseKeyOf, heraldFields, isNormalPriority, pushExpiresAt, pushKindOf } from '../push-common.ts';

/** The FCM HTTP v1 `message` for a notification and a registration token. */
export function fcmMessage(n: Notification, token: string, now = Date.now()): Record<string, unknown> {
  const kind = pushKindOf(n);
  const ttlSeconds = Math.max(0, Math.floor((pushExpiresAt(n) - now) / 1000));
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
