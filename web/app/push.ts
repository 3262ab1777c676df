/**
 * The service worker and Web Push from the page's side: register /sw.js, subscribe with
 * Herald's VAPID key, hand the subscription to Herald (chatdevice), and leave the worker
 * what it needs to renew the subscription by itself (pushsubscriptionchange).
 */
import type { Ozeki, PushSubscriptionFields } from '../shared/ozeki.ts';
import { kvDelete, kvSet, PUSH_RENEWAL_KEY, type PushRenewal } from '../shared/kv.ts';
import { base64UrlBytes } from '../shared/base64url.ts';

export const pushSupported = (): boolean => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

export function registerWorker(): Promise<ServiceWorkerRegistration> | undefined {
  if (!('serviceWorker' in navigator)) return undefined;
  return navigator.serviceWorker.register('/sw.js', { scope: '/' });
}

/**
 * Subscribes (or takes the existing subscription) and registers it with Herald. Asks for
 * permission first when it has not been given: call it from a click, as browsers demand.
 */
export async function enablePush(ozeki: Ozeki, vapidPublicKey: string): Promise<void> {
  if (!pushSupported()) throw new Error('this browser has no Web Push');
  if (Notification.permission !== 'granted' && (await Notification.requestPermission()) !== 'granted') {
    throw new Error('notifications are blocked for this site in the browser settings');
  }
  await registerWorker();
  const registration = await navigator.serviceWorker.ready;
  const subscription = await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: base64UrlBytes(vapidPublicKey),
  });
  await ozeki.registerPush(subscription.toJSON() as PushSubscriptionFields);
  const renewal: PushRenewal = { station: ozeki.station, vapidPublicKey };
  await kvSet(PUSH_RENEWAL_KEY, renewal);
}

/** On sign-out: this browser no longer gets the user's pushes. */
export async function disablePush(ozeki: Ozeki): Promise<void> {
  await kvDelete(PUSH_RENEWAL_KEY).catch(() => undefined);
  if (!pushSupported()) return;
  const registration = await navigator.serviceWorker.getRegistration('/');
  const subscription = await registration?.pushManager.getSubscription();
  await subscription?.unsubscribe().catch(() => undefined);
  await ozeki.registerPush(null).catch(() => undefined);
}
