/**
 * The service worker at /sw.js: shows Herald's Web Push notifications while no Herald tab is
 * open, one per conversation, and keeps the app badge.
 *
 * Browsers subscribe with `userVisibleOnly`: every push must leave something shown (Chrome
 * shows its own "This site has been updated in the background" otherwise, Safari revokes the
 * subscription). Herald therefore never sends a silent notification by Web Push, and when a
 * clean push closes the conversation's notification and nothing else is left on screen, the
 * worker shows a quiet summary ("3 unread", "All caught up") in its place.
 */
import { Ozeki, type PushSubscriptionFields } from '../shared/ozeki.ts';
import { kvGet, kvSet, PUSH_RENEWAL_KEY, type PushRenewal } from '../shared/kv.ts';
import { base64UrlBytes } from '../shared/base64url.ts';

const worker = self as unknown as ServiceWorkerGlobalScope;

/** What Herald's push carries (src/channels/webpush/payload.ts, README "What the service worker receives"). */
interface PushPayload {
  type: string;
  title?: string;
  body?: string;
  badge: number;
  conversationid: string | null;
  seq?: number;
  id?: string;
  silent?: boolean;
}

/** What each notification the worker shows carries, to be found again. */
interface ShownData {
  conversationid: string | null;
  seq: number | undefined;
  id: string | undefined;
  url: string;
}

const SUMMARY_TAG = 'herald-summary';
const ICON = '/assets/favicon.svg';

/**
 * The highest sequence shown or cleaned per tag: a push that arrives after a newer one of
 * its conversation (push services do not keep order) is not news. Kept in memory and in
 * IndexedDB (`seq:<tag>`), since the browser stops an idle worker between pushes.
 */
const seenSeq = new Map<string, number>();
const seqKey = (tag: string) => `seq:${tag}`;
/** The id of the last push handled to its end (IndexedDB): what a test or a debugging person can watch. */
const LAST_PUSH_KEY = 'last-push';

const tagOf = (p: PushPayload) => (p.conversationid ? `conversation:${p.conversationid}` : (p.id ?? 'herald'));
const urlOf = (conversationid: string | null) => (conversationid ? `/#/c/${encodeURIComponent(conversationid)}` : '/');

worker.addEventListener('install', () => void worker.skipWaiting());
worker.addEventListener('activate', (event) => event.waitUntil(worker.clients.claim()));

worker.addEventListener('push', (event) => {
  let payload: PushPayload;
  try {
    payload = event.data?.json() as PushPayload;
    if (typeof payload !== 'object' || payload === null || typeof payload.type !== 'string') throw new Error('not a Herald push');
  } catch {
    event.waitUntil(showSummary('You have new notifications'));
    return;
  }
  const handled = payload.type === 'clean' ? clean(payload) : alert(payload);
  event.waitUntil(handled.finally(() => kvSet(LAST_PUSH_KEY, payload.id ?? null).catch(() => undefined)));
});

async function highestSeq(tag: string): Promise<number | undefined> {
  return seenSeq.get(tag) ?? (await kvGet<number>(seqKey(tag)).catch(() => undefined));
}

async function alert(p: PushPayload): Promise<void> {
  const tag = tagOf(p);
  const known = await highestSeq(tag);
  if (typeof p.seq === 'number') {
    if (known !== undefined && p.seq <= known) return showSomething(p.badge);
    await remember(tag, p.seq);
  }
  await setBadge(p.badge);
  if (p.silent) return showSomething(p.badge);
  for (const summary of await worker.registration.getNotifications({ tag: SUMMARY_TAG })) summary.close();
  const data: ShownData = { conversationid: p.conversationid, seq: p.seq, id: p.id, url: urlOf(p.conversationid) };
  // renotify: a newer message of the same conversation replaces the shown one and alerts again.
  const options: NotificationOptions & { renotify: boolean } = { body: p.body ?? '', tag, renotify: true, icon: ICON, data };
  await worker.registration.showNotification(p.title || 'Herald', options);
}

/** The user has read: close what the clean covers, and leave a summary when nothing else is shown. */
async function clean(p: PushPayload): Promise<void> {
  for (const shown of await worker.registration.getNotifications()) {
    const data = shown.data as ShownData | null;
    if (shown.tag === SUMMARY_TAG || !data) continue;
    const covered = p.conversationid === null || data.conversationid === p.conversationid;
    // A clean covers what came before it in the feed, never a newer message.
    if (covered && (typeof p.seq !== 'number' || typeof data.seq !== 'number' || data.seq < p.seq)) shown.close();
  }
  if (p.conversationid && typeof p.seq === 'number') {
    const tag = tagOf(p);
    const known = await highestSeq(tag);
    if (known === undefined || p.seq > known) await remember(tag, p.seq);
  }
  await setBadge(p.badge);
  await showSomething(p.badge);
}

async function remember(tag: string, seq: number): Promise<void> {
  seenSeq.set(tag, seq);
  await kvSet(seqKey(tag), seq).catch(() => undefined);
}

/** The browser's rule for userVisibleOnly: when no Herald window is visible, something must remain shown. */
async function showSomething(badge: number): Promise<void> {
  const windows = await worker.clients.matchAll({ type: 'window', includeUncontrolled: true });
  if (windows.some((client) => client.visibilityState === 'visible')) return;
  const shown = await worker.registration.getNotifications();
  if (shown.some((n) => n.tag !== SUMMARY_TAG)) {
    for (const summary of shown) if (summary.tag === SUMMARY_TAG) summary.close();
    return;
  }
  await showSummary(badge > 0 ? `${badge} unread` : 'All caught up');
}

function showSummary(body: string): Promise<void> {
  const data: ShownData = { conversationid: null, seq: undefined, id: undefined, url: '/' };
  return worker.registration.showNotification('Herald', { body, tag: SUMMARY_TAG, silent: true, icon: ICON, data });
}

async function setBadge(badge: number): Promise<void> {
  const navigator = worker.navigator as WorkerNavigator & { setAppBadge?(n: number): Promise<void>; clearAppBadge?(): Promise<void> };
  try {
    if (badge > 0) await navigator.setAppBadge?.(badge);
    else await navigator.clearAppBadge?.();
  } catch {
    // Not installed as an app: there is no badge to set.
  }
}

worker.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data as ShownData | null;
  event.waitUntil(openApp(data?.conversationid ?? null, data?.url ?? '/'));
});

/** Focuses an open Herald window and has it open the conversation, or opens one there. */
async function openApp(conversationid: string | null, url: string): Promise<void> {
  const windows = await worker.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const open = windows.find((client) => new URL(client.url).origin === worker.location.origin);
  if (open) {
    const focused = await open.focus();
    if (conversationid) focused.postMessage({ type: 'open', conversationid });
    return;
  }
  await worker.clients.openWindow(url);
}

/**
 * The push service replaced or expired the subscription: subscribe again with Herald's key
 * and register the new one for the station the app signed in with (kept in IndexedDB).
 */
worker.addEventListener('pushsubscriptionchange', (event) => {
  const change = event as ExtendableEvent & { newSubscription?: PushSubscription | null };
  change.waitUntil(renewSubscription(change.newSubscription ?? null));
});

async function renewSubscription(given: PushSubscription | null): Promise<void> {
  const renewal = await kvGet<PushRenewal>(PUSH_RENEWAL_KEY);
  if (!renewal) return; // signed out: nothing to renew
  let vapidPublicKey = renewal.vapidPublicKey;
  try {
    const response = await fetch('/v1/webpush/vapid-public-key');
    if (response.ok) vapidPublicKey = ((await response.json()) as { publickey: string }).publickey;
  } catch {
    // Offline: the key kept at subscription time is the one to use.
  }
  const subscription =
    given ??
    (await worker.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64UrlBytes(vapidPublicKey) }));
  await new Ozeki(renewal.station, worker.location.origin).registerPush(subscription.toJSON() as PushSubscriptionFields);
  await kvSet(PUSH_RENEWAL_KEY, { ...renewal, vapidPublicKey } satisfies PushRenewal);
}
