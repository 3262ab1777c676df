import { createHash } from 'node:crypto';
import net from 'node:net';
import type { Transaction } from 'kysely';
import type { MatrixProvider } from '../config.ts';
import { HeraldError } from '../errors.ts';
import type { NotificationDraft } from '../model/notification.ts';
import type { Notifier } from '../notify/notifier.ts';
import { feedEpochsAfter, userKeyOf } from '../notify/feed.ts';
import type { Database, DevicesTable } from '../store/schema.ts';
import { newApiKey, userIdOf } from './ids.ts';
import { newDevice, type Platform } from './devices.ts';
import { apiKeyColumns, apiKeyOf } from './users.ts';
import type { SecretBox } from '../store/secrets.ts';
import { checkPushSubscription, isInternalAddress } from './push-subscription.ts';

/*
 * Herald as a Matrix push gateway (Push Gateway API, POST /_matrix/push/v1/notify). Each
 * pusher a homeserver names (app id and pushkey) becomes a user of its own with one device,
 * made on first sight, so a Matrix notification travels like every other one: into that
 * user's feed, through the durable outbox, to APNs, FCM or Web Push.
 */

/** One device of a notify request, as the homeserver sends it (already checked for shape). */
export interface MatrixDevice {
  appId: string;
  pushkey: string;
  /** When the homeserver last set this pusher, unix seconds. */
  pushkeyTs?: number;
  /** The pusher's data minus `url`: `format`, and a Web Push pusher's `endpoint` and `auth`. */
  data: Record<string, unknown>;
}

/** The `notification` of a notify request, already checked for shape. */
export interface MatrixNotification {
  eventId?: string;
  roomId?: string;
  type?: string;
  sender?: string;
  senderDisplayName?: string;
  roomName?: string;
  roomAlias?: string;
  userIsTarget?: boolean;
  prio: 'high' | 'low';
  unread?: number;
  missedCalls?: number;
  devices: MatrixDevice[];
}

/** Where a pushkey is pushed to, as a device's push columns hold it. */
interface PushTarget {
  provider: MatrixProvider;
  token: string;
  /** Web Push: JSON {p256dh, auth}. */
  keys: string | null;
}

const PLATFORM_OF: Record<MatrixProvider, Platform> = { apns: 'ios', fcm: 'android', webpush: 'browser' };

/** The domain of pusher users' e-mail addresses: reserved (RFC 2606), so never a real mailbox. */
const PUSHER_EMAIL_DOMAIN = 'matrix.invalid';
export const PUSHER_NAME = 'Matrix pusher';

/** How many of a pusher's newest notifications are searched for a retried event id. */
const DUPLICATE_WINDOW = 20;
/** A name longer than this is cut in a title. */
const MAX_NAME_IN_TITLE = 100;

/**
 * The device token a pushkey stands for, or undefined when it cannot be one of its provider.
 * APNs: Matrix apps register the token's bytes in base64 (the convention of Sygnal, the
 * reference gateway); a pushkey that is already hexadecimal is taken as it is.
 */
function pushTarget(provider: MatrixProvider, device: MatrixDevice, allowPrivateEndpoints: boolean): PushTarget | undefined {
  const { pushkey } = device;
  if (provider === 'apns') {
    if (/^[0-9a-fA-F]{16,200}$/.test(pushkey)) return { provider, token: pushkey.toLowerCase(), keys: null };
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(pushkey) || pushkey.length % 4 !== 0) return undefined;
    const bytes = Buffer.from(pushkey, 'base64');
    if (bytes.length < 8 || bytes.length > 100) return undefined;
    return { provider, token: bytes.toString('hex'), keys: null };
  }
  if (provider === 'fcm') {
    // FCM registration tokens are printable ASCII without spaces (about 160 characters today).
    if (pushkey.length > 4096 || !/^[\x21-\x7e]+$/.test(pushkey)) return undefined;
    return { provider, token: pushkey, keys: null };
  }
  // Web Push (Sygnal's convention): the pushkey is the subscription's p256dh key, the
  // pusher's data carries its endpoint and auth secret.
  try {
    const subscription = checkPushSubscription({ endpoint: device.data.endpoint, keys: { p256dh: pushkey, auth: device.data.auth } });
    // An endpoint on an internal address written as one is refused now; a name that resolves
    // to one is refused when the push is sent (the device's push is then disabled).
    const host = new URL(subscription.endpoint).hostname.replace(/^\[|\]$/g, '');
    if (!allowPrivateEndpoints && net.isIP(host) !== 0 && isInternalAddress(host)) return undefined;
    return { provider, token: subscription.endpoint, keys: JSON.stringify(subscription.keys) };
  } catch (error) {
    if (error instanceof HeraldError) return undefined;
    throw error;
  }
}

/** A pusher's identity: a hash of its app id and pushkey, as the homeserver names it. */
function pusherHash(appId: string, pushkey: string): string {
  return createHash('sha256').update(`${appId}\n${pushkey}`).digest('hex');
}

/**
 * A pusher user's station, made from its secret API key: the same on every node and in
 * every racing request, yet not computable from the pushkey, so nobody who knows a pushkey
 * can connect as the pusher's device (a station is what Herald's device APIs trust).
 */
function pusherStation(apikey: string): string {
  return createHash('sha256').update(`matrix pusher station\n${apikey}`).digest('hex').slice(0, 32);
}

function cut(name: string): string {
  return name.length > MAX_NAME_IN_TITLE ? `${name.slice(0, MAX_NAME_IN_TITLE - 1)}…` : name;
}

/**
 * What the device shows: who and where, never what (the content of a Matrix event may be
 * end-to-end encrypted and is never put in a push). `event_id_only` pushers get no names.
 */
function titleOf(n: MatrixNotification, idsOnly: boolean): string {
  if (idsOnly) return 'New message';
  const sender = cut(n.senderDisplayName ?? n.sender ?? 'Someone');
  const roomName = n.roomName ?? n.roomAlias;
  const room = roomName === undefined ? undefined : cut(roomName);
  if (n.type === 'm.room.member' && n.userIsTarget) return room ? `${sender} invited you to ${room}` : `${sender} invited you`;
  if (n.type === 'm.call.invite') return room ? `Call from ${sender} in ${room}` : `Call from ${sender}`;
  return room ? `${sender} in ${room}` : `New message from ${sender}`;
}

/**
 * The keys every push of the notification carries (all strings, as FCM requires), named as
 * Sygnal names them so Matrix apps find them: what the app needs to fetch the event itself.
 */
function pushFields(n: MatrixNotification): Record<string, string> {
  const fields: Record<string, string> = {};
  if (n.eventId !== undefined) fields.event_id = n.eventId;
  if (n.roomId !== undefined) fields.room_id = n.roomId;
  if (n.unread !== undefined) fields.unread_count = String(n.unread);
  if (n.missedCalls !== undefined) fields.missed_calls = String(n.missedCalls);
  fields.prio = n.prio;
  return fields;
}

/** The pusher's user, made on first sight; its key and API key. */
async function pusherUser(
  trx: Transaction<Database>,
  secrets: SecretBox,
  hash: string,
  now: number,
): Promise<{ id: string; apikey: string }> {
  const email = `${hash}@${PUSHER_EMAIL_DOMAIN}`;
  const id = userIdOf(email);
  // A random API key: the pusher's user exists to hold a feed, and nobody logs in as it.
  await trx
    .insertInto('users')
    .values({
      id,
      email,
      name: PUSHER_NAME,
      nick: PUSHER_NAME,
      ...apiKeyColumns(secrets, id, newApiKey()),
      availability: 'offline',
      availability_changed_at: 0,
      created_at: now,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const user = await trx.selectFrom('users').select(['id', 'apikey_sealed']).where('id', '=', id).executeTakeFirstOrThrow();
  return { id: user.id, apikey: apiKeyOf(secrets, user) };
}

/** The pusher's one device, made on first sight. */
async function pusherDevice(
  trx: Transaction<Database>,
  user: { id: string; apikey: string },
  target: PushTarget,
  now: number,
): Promise<DevicesTable> {
  const station = pusherStation(user.apikey);
  await trx
    .insertInto('devices')
    .values(
      newDevice(station, user.id, PLATFORM_OF[target.provider], now, {
        push_provider: target.provider,
        push_token: target.token,
        push_keys: target.keys,
      }),
    )
    .onConflict((oc) => oc.column('station').doNothing())
    .execute();
  return trx.selectFrom('devices').selectAll().where('station', '=', station).executeTakeFirstOrThrow();
}

/** True when one of the pusher's newest notifications is about this event (a retried notify). */
async function alreadyNotified(trx: Transaction<Database>, userId: string, eventId: string): Promise<boolean> {
  const rows = await trx
    .selectFrom('notifications')
    .select('data')
    .where(feedEpochsAfter(userKeyOf(userId), 0))
    .where('user_key', '=', userKeyOf(userId))
    .orderBy('seq', 'desc')
    .limit(DUPLICATE_WINDOW)
    .execute();
  return rows.some((row) => (JSON.parse(row.data) as { push?: { event_id?: unknown } }).push?.event_id === eventId);
}

export interface MatrixGatewayOptions {
  /** app id → provider (HERALD_MATRIX_APPS). */
  apps: ReadonlyMap<string, MatrixProvider>;
  /** Whether a Web Push endpoint may be on an internal address (HERALD_WEBPUSH_ALLOW_PRIVATE). */
  allowPrivateEndpoints: boolean;
  /** Opens a pusher user's API key, of which its station is made. */
  secrets: SecretBox;
}

/**
 * Hands one Matrix notification to its pushers, in one notifier transaction: each pusher's
 * user and device are found or made, and one notification per pusher is appended to its
 * feed (with its outbox row). Says which pushkeys the homeserver should drop: those of an
 * app id that is not configured, those that cannot be a token of their provider, and those
 * whose device a provider has called dead, now or on an earlier push.
 */
export async function notifyPushers(
  notifier: Notifier,
  options: MatrixGatewayOptions,
  n: MatrixNotification,
): Promise<{ rejected: string[] }> {
  const rejected = new Set<string>();
  const pushers = new Map<string, { device: MatrixDevice; target: PushTarget }>();
  for (const device of n.devices) {
    const provider = options.apps.get(device.appId);
    const target = provider && pushTarget(provider, device, options.allowPrivateEndpoints);
    if (!target) rejected.add(device.pushkey);
    // Named twice in one request: pushed once.
    else pushers.set(pusherHash(device.appId, device.pushkey), { device, target });
  }
  if (pushers.size === 0) return { rejected: [...rejected] };

  // A notify without an event only updates the counts: the badge push.
  const isEvent = n.eventId !== undefined;
  const fields = pushFields(n);
  await notifier.transact(async (trx, emit) => {
    const now = Date.now();
    const drafts: NotificationDraft[] = [];
    // Pushers in hash order, so two requests naming the same new ones take their locks alike.
    for (const hash of [...pushers.keys()].sort()) {
      const { device, target } = pushers.get(hash)!;
      const user = await pusherUser(trx, options.secrets, hash, now);
      const stored = await pusherDevice(trx, user, target, now);
      if (stored.push_disabled_at !== null) {
        // The provider called the token dead. The homeserver sets the pusher again (a newer
        // pushkey_ts) when the app registers anew; until then the pushkey stays rejected.
        const reRegistered = device.pushkeyTs !== undefined && device.pushkeyTs * 1000 > stored.push_disabled_at;
        if (!reRegistered) {
          rejected.add(device.pushkey);
          continue;
        }
      }
      if (stored.push_disabled_at !== null || stored.push_token !== target.token || stored.push_keys !== target.keys) {
        await trx
          .updateTable('devices')
          .set({ push_token: target.token, push_keys: target.keys, push_disabled_at: null, push_disabled_reason: null, last_seen_at: now })
          .where('station', '=', stored.station)
          .execute();
      }
      // The homeserver retries a notify that failed, and the spec asks gateways not to
      // alert twice for one event.
      if (isEvent && (await alreadyNotified(trx, user.id, n.eventId!))) continue;
      const idsOnly = device.data.format === 'event_id_only';
      drafts.push({
        userId: user.id,
        type: isEvent ? 'message' : 'clean',
        conversationId: n.roomId ?? null,
        senderId: null,
        title: isEvent ? titleOf(n, idsOnly) : '',
        silent: n.prio === 'low',
        data: { push: fields },
        // The homeserver's own count; a notify without counts means none are unread.
        badge: n.unread ?? 0,
      });
    }
    if (drafts.length > 0) await emit(drafts, { now });
  });
  return { rejected: [...rejected] };
}

/** Bound once per node, for the API surface. */
export function matrixGateway(notifier: Notifier, options: MatrixGatewayOptions) {
  return {
    configured: options.apps.size > 0,
    notify: (n: MatrixNotification) => notifyPushers(notifier, options, n),
  };
}

export type MatrixGateway = ReturnType<typeof matrixGateway>;

/** The user id of a pusher's user (operators find a pusher's device and feed by it). */
export function pusherUserId(appId: string, pushkey: string): string {
  return userIdOf(`${pusherHash(appId, pushkey)}@${PUSHER_EMAIL_DOMAIN}`);
}
