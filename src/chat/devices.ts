import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database, DevicesTable } from '../store/schema.ts';
import { badRequest, forbidden, notFound } from '../errors.ts';
import { STATION } from './ids.ts';
import { checkPushSubscription } from './push-subscription.ts';
import type { Bus } from '../cluster/bus.ts';
import { Statement } from '../store/statement.ts';
import { sealContext, type SecretBox } from '../store/secrets.ts';

type Db = Kysely<Database>;

export const PLATFORMS = ['browser', 'windows', 'mac', 'linux', 'android', 'ios'] as const;
export type Platform = (typeof PLATFORMS)[number];

export function isPlatform(value: unknown): value is Platform {
  return typeof value === 'string' && (PLATFORMS as readonly string[]).includes(value);
}

/** Which provider a push token belongs to follows from the platform. */
export function pushProviderFor(platform: Platform): 'apns' | 'fcm' | null {
  if (platform === 'android') return 'fcm';
  if (platform === 'ios' || platform === 'mac') return 'apns';
  return null;
}

export function checkStation(station: unknown): string {
  if (typeof station !== 'string' || !STATION.test(station)) {
    throw badRequest('the station (Ozeki-Station) must be 32 hexadecimal characters');
  }
  return station.toLowerCase();
}

/** A device as it is first stored: nothing acknowledged yet, push only when `extra` gives it. */
export function newDevice(
  station: string,
  userId: string,
  platform: Platform,
  now: number,
  extra: Partial<DevicesTable> = {},
): DevicesTable {
  return {
    station,
    user_id: userId,
    platform,
    udp_secret_sealed: null,
    push_provider: null,
    push_token: null,
    push_keys: null,
    push_disabled_at: null,
    push_disabled_reason: null,
    alert_kinds: null,
    active_at: null,
    acked_seq: 0,
    seen_seq: 0,
    delivered_seq: 0,
    last_seen_at: now,
    created_at: now,
    ...extra,
  };
}

/** A device as login leaves it, with its UDP secret opened (the login's answer carries it). */
export interface BoundDevice {
  device: DevicesTable;
  udpSecret: string;
}

/**
 * Login binds a station to its user. A station already bound to another user is refused:
 * it would otherwise receive that user's notifications. A device gets its UDP secret at its
 * first login and keeps it; the database holds it sealed.
 */
export async function bindStation(db: Db, secrets: SecretBox, station: string, userId: string, platform?: Platform): Promise<BoundDevice> {
  const now = Date.now();
  const existing = await db.selectFrom('devices').selectAll().where('station', '=', station).executeTakeFirst();
  if (existing && existing.user_id !== userId) {
    throw forbidden('this station belongs to another user; use a new station id');
  }
  const kept = existing ? udpSecretOf(secrets, existing) : null;
  const udpSecret = kept ?? newSecret();
  const sealed = kept === null ? sealUdpSecret(secrets, station, udpSecret) : existing!.udp_secret_sealed;
  if (existing) {
    await db
      .updateTable('devices')
      .set({ last_seen_at: now, ...(platform ? { platform } : {}), udp_secret_sealed: sealed })
      .where('station', '=', station)
      .execute();
  } else {
    await db
      .insertInto('devices')
      .values(newDevice(station, userId, platform ?? 'browser', now, { udp_secret_sealed: sealed }))
      .execute();
  }
  const device = await db.selectFrom('devices').selectAll().where('station', '=', station).executeTakeFirstOrThrow();
  return { device, udpSecret };
}

function newSecret(): string {
  return randomBytes(32).toString('hex');
}

function sealUdpSecret(secrets: SecretBox, station: string, udpSecret: string): string {
  return secrets.seal(udpSecret, sealContext.udpSecret(station));
}

/** A device's UDP secret, opened; null for a device that never logged in (an admin-made push device). */
export function udpSecretOf(secrets: SecretBox, device: Pick<DevicesTable, 'station' | 'udp_secret_sealed'>): string | null {
  return device.udp_secret_sealed === null ? null : secrets.open(device.udp_secret_sealed, sealContext.udpSecret(device.station));
}

export async function deviceOf(db: Db, station: string): Promise<DevicesTable | undefined> {
  return db.selectFrom('devices').selectAll().where('station', '=', station).executeTakeFirst();
}

/** Whose each of these stations is, for the stations that are still devices. */
export async function ownersOf(db: Db, stations: readonly string[]): Promise<Map<string, string>> {
  const owners = new Map<string, string>();
  if (stations.length === 0) return owners;
  const rows = await db.selectFrom('devices').select(['station', 'user_id']).where('station', 'in', stations).execute();
  for (const row of rows) owners.set(row.station, row.user_id);
  return owners;
}

export interface DeviceRegistration {
  platform: Platform;
  pushToken?: string | null;
  /** A browser's Web Push subscription (PushSubscription.toJSON()); null removes it. */
  pushSubscription?: unknown;
}

/** What a registration does to a device's push columns (undefined: leaves them as they are). */
export interface PushRegistration {
  provider: 'apns' | 'fcm' | 'webpush' | null;
  token: string | null;
  /** Web Push: JSON {p256dh, auth}. */
  keys: string | null;
}

/**
 * Checks a registration before anything is written, so a refused one changes nothing
 * (the admin's PUT calls it before creating the device).
 */
export function checkRegistration(reg: DeviceRegistration): PushRegistration | undefined {
  const hasToken = reg.pushToken !== undefined && reg.pushToken !== null && reg.pushToken !== '';
  if (reg.pushSubscription !== undefined) {
    if (reg.platform !== 'browser') throw badRequest(`platform ${reg.platform} takes no pushsubscription; only browser does`);
    if (hasToken) throw badRequest('send either pushtoken or pushsubscription, not both');
    if (reg.pushSubscription === null) return { provider: null, token: null, keys: null };
    const subscription = checkPushSubscription(reg.pushSubscription);
    return { provider: 'webpush', token: subscription.endpoint, keys: JSON.stringify(subscription.keys) };
  }
  if (reg.pushToken === undefined) return undefined;
  if (!hasToken) return { provider: null, token: null, keys: null };
  const provider = pushProviderFor(reg.platform);
  if (!provider) {
    throw badRequest(
      `platform ${reg.platform} takes no push token${reg.platform === 'browser' ? '; a browser sends its pushsubscription' : ''}`,
    );
  }
  if (typeof reg.pushToken !== 'string' || reg.pushToken.length > 4096) {
    throw badRequest('pushtoken must be a string of at most 4096 characters');
  }
  if (provider === 'apns' && !/^[0-9a-fA-F]{16,200}$/.test(reg.pushToken)) {
    throw badRequest('an APNs push token is hexadecimal');
  }
  return { provider, token: provider === 'apns' ? reg.pushToken.toLowerCase() : reg.pushToken, keys: null };
}

/**
 * Sets a device's platform and push token (or a browser's Web Push subscription, whose
 * endpoint is its token). A token can belong to one device only: when it moves (the phone
 * changed hands, the app was reinstalled for another user) it is detached from wherever it
 * was before.
 */
export async function registerDevice(db: Db, station: string, userId: string, reg: DeviceRegistration) {
  const push = checkRegistration(reg);
  const device = await deviceOf(db, station);
  if (!device || device.user_id !== userId) throw forbidden('unknown station; log in first');
  const provider = push?.provider ?? null;
  const token = push?.token ?? null;
  await db.transaction().execute(async (trx) => {
    if (token) {
      await trx
        .updateTable('devices')
        .set({ push_token: null, push_provider: null, push_keys: null, push_disabled_at: null, push_disabled_reason: null })
        .where('push_provider', '=', provider)
        .where('push_token', '=', token)
        .where('station', '!=', station)
        .execute();
    }
    await trx
      .updateTable('devices')
      .set({
        platform: reg.platform,
        last_seen_at: Date.now(),
        ...(push
          ? { push_token: token, push_provider: provider, push_keys: push.keys, push_disabled_at: null, push_disabled_reason: null }
          : {}),
      })
      .where('station', '=', station)
      .execute();
  });
  return (await deviceOf(db, station))!;
}

export async function listDevices(db: Db, userId: string) {
  const rows = await db.selectFrom('devices').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  return rows.map(describeDevice);
}

export function describeDevice(d: DevicesTable) {
  return {
    station: d.station,
    platform: d.platform,
    push: d.push_provider
      ? {
          provider: d.push_provider,
          enabled: d.push_disabled_at === null,
          disabledat: d.push_disabled_at,
          disabledreason: d.push_disabled_reason,
        }
      : null,
    ackedseq: d.acked_seq,
    deliveredseq: d.delivered_seq,
    lastseen: d.last_seen_at,
    created: d.created_at,
  };
}

/** How many devices one user may have; logging in on one more forgets the longest unseen. */
export const MAX_DEVICES_PER_USER = 100;

/**
 * Keeps a user at MAX_DEVICES_PER_USER devices by removing those seen longest ago (never
 * `keep`, the station that just logged in), and ends their live connections on every node.
 * A client that makes up a new station at every login would otherwise grow the device list,
 * and every fan-out to that user, without bound. Says which stations it removed.
 */
export async function forgetDevicesBeyondLimit(
  db: Db,
  bus: Pick<Bus, 'publishDisconnect'>,
  userId: string,
  keep: string,
): Promise<string[]> {
  const devices = await db
    .selectFrom('devices')
    .select(['station'])
    .where('user_id', '=', userId)
    .where('station', '!=', keep)
    .orderBy('last_seen_at', 'desc')
    .orderBy('station')
    .offset(MAX_DEVICES_PER_USER - 1)
    .limit(1000)
    .execute();
  const stations = devices.map((d) => d.station);
  if (stations.length > 0) await forgetDevices(db, bus, userId, stations, 'this device was replaced by newer ones');
  return stations;
}

/**
 * Removes devices of a user and ends their live connections on every node (WebSocket, UDP,
 * Web3MQ, and the stations nodes remember); says how many there were.
 */
async function forgetDevices(
  db: Db,
  bus: Pick<Bus, 'publishDisconnect'>,
  userId: string,
  stations: string[],
  reason: string,
): Promise<number> {
  const result = await db.deleteFrom('devices').where('user_id', '=', userId).where('station', 'in', stations).executeTakeFirst();
  for (const station of stations) await bus.publishDisconnect({ userId, station, reason });
  return Number(result.numDeletedRows);
}

export async function removeDevice(db: Db, bus: Pick<Bus, 'publishDisconnect'>, userId: string, station: string): Promise<void> {
  if ((await forgetDevices(db, bus, userId, [station], 'this device was removed')) === 0) throw notFound('no such device');
}

/** What a live channel learned about one device since it last wrote it down. */
export interface LiveProgress {
  station: string;
  /** Highest sequence the device acknowledged. */
  ackedSeq: number;
  /** Highest sequence sent to the device over a live connection. */
  deliveredSeq: number;
  seenAt: number;
  /**
   * When the device was last in use (an ack, a frame, an explicit `active`), for the
   * presence-aware push hold; null: it went idle or its last connection closed; undefined:
   * unchanged.
   */
  activeAt?: number | null;
  /** Highest sequence acknowledged while in use (a held push of it need not alert). */
  seenSeq?: number;
}

/** Devices whose progress one statement writes. */
const PROGRESS_CHUNK = 500;

/**
 * Sequences never go backwards; a device removed meanwhile is simply not updated. The
 * batch travels as one JSON parameter of [station, acked, delivered, seen, active, seen
 * while active] entries; `active` is null for unchanged and 0 for cleared.
 */
const RECORD_PROGRESS = new Statement({
  sqlite: `UPDATE devices SET acked_seq = max(acked_seq, p.value ->> 1), delivered_seq = max(delivered_seq, p.value ->> 2),
             last_seen_at = p.value ->> 3,
             active_at = CASE WHEN p.value ->> 4 IS NULL THEN active_at WHEN p.value ->> 4 = 0 THEN NULL ELSE p.value ->> 4 END,
             seen_seq = max(seen_seq, coalesce(p.value ->> 5, 0))
           FROM json_each(?) AS p WHERE devices.station = p.value ->> 0`,
  postgres: `UPDATE devices SET acked_seq = greatest(devices.acked_seq, (p ->> 1)::bigint),
               delivered_seq = greatest(devices.delivered_seq, (p ->> 2)::bigint), last_seen_at = (p ->> 3)::bigint,
               active_at = CASE WHEN p ->> 4 IS NULL THEN devices.active_at WHEN (p ->> 4)::bigint = 0 THEN NULL
                                ELSE (p ->> 4)::bigint END,
               seen_seq = greatest(devices.seen_seq, coalesce((p ->> 5)::bigint, 0))
             FROM jsonb_array_elements(?::jsonb) AS p WHERE devices.station = p ->> 0`,
});

/**
 * Writes the progress of many devices (the WebSocket channel batches acknowledgements
 * instead of writing one per frame): one statement per 500 devices, with a turn of the
 * event loop between them, so a flush of thousands of devices never holds up message
 * traffic for long. Two entries for one station (a connection that closed and one still
 * open) count as one, with the highest of each.
 */
export async function recordLiveProgress(db: Db, progress: LiveProgress[]): Promise<void> {
  const byStation = new Map<string, [string, number, number, number, number | null, number]>();
  for (const p of progress) {
    // Cleared is 0, so an activity of the same device in the same batch wins over it.
    const active = p.activeAt === undefined ? null : (p.activeAt ?? 0);
    const entry = byStation.get(p.station);
    if (!entry) byStation.set(p.station, [p.station, p.ackedSeq, p.deliveredSeq, p.seenAt, active, p.seenSeq ?? 0]);
    else {
      entry[1] = Math.max(entry[1], p.ackedSeq);
      entry[2] = Math.max(entry[2], p.deliveredSeq);
      entry[3] = Math.max(entry[3], p.seenAt);
      if (active !== null) entry[4] = Math.max(entry[4] ?? 0, active);
      entry[5] = Math.max(entry[5], p.seenSeq ?? 0);
    }
  }
  // Rows are written in station order, so two nodes flushing the same devices take their locks alike.
  const entries = [...byStation.values()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let start = 0; start < entries.length; start += PROGRESS_CHUNK) {
    if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    await RECORD_PROGRESS.all(db, [JSON.stringify(entries.slice(start, start + PROGRESS_CHUNK))]);
  }
}
