import type { SendOutcome } from '../../model/channel.ts';
import type { Notification } from '../../model/notification.ts';
import { collapseKeyOf, heraldFields, isNormalPriority, pushExpiresAt, pushKindOf } from '../push-common.ts';

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
    // have priority 5, and so does an alert its sender let wait for the device's convenience.
    pushType: kind === 'background' ? 'background' : 'alert',
    priority: kind === 'alert' && !isNormalPriority(n) ? 10 : 5,
    expiration: Math.floor(pushExpiresAt(n) / 1000),
    collapseId: kind === 'alert' ? collapseKeyOf(n.conversationId) : undefined,
    payload,
  };
}

/**
 * A push as it goes on the wire, made once per notification and shared by the pushes to
 * all of its user's devices: the payload's bytes, the header values that do not depend on
 * the device, and the outcome APNs' acceptance of it means.
 */
export interface PreparedPush {
  payload: Buffer;
  pushType: string;
  expiration: string;
  /** Undefined for priority 10, which APNs assumes when the header is absent. */
  priority: string | undefined;
  collapseId: string | undefined;
  /** The notification's id, sent as apns-id so that apps can drop a duplicate. */
  apnsId: string;
  /** 200 with this apns-id echoed (as APNs does): one outcome object for every device. */
  delivered: SendOutcome;
}

export function preparePush(push: ApnsPush, apnsId: string): PreparedPush {
  return {
    payload: Buffer.from(push.payload),
    pushType: push.pushType,
    expiration: String(push.expiration),
    // APNs: without apns-priority a push is sent at priority 10 (immediately).
    priority: push.priority === 10 ? undefined : String(push.priority),
    collapseId: push.collapseId || undefined,
    apnsId,
    delivered: Object.freeze({ kind: 'delivered', detail: `200 apns-id ${apnsId}` }),
  };
}
