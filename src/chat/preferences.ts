import type { Kysely } from 'kysely';
import type { Bus } from '../cluster/bus.ts';
import type { Database } from '../store/schema.ts';
import { badRequest } from '../errors.ts';
import { isCustomKind } from '../model/notification.ts';
import {
  isQuietAt,
  minutesOfDay,
  preferencesQuietHours,
  WEEKDAYS,
  type PreferenceView,
  type QuietHours,
  type Weekday,
} from '../notify/preferences.ts';

/*
 * A user's alert preferences as the APIs read and change them: do-not-disturb, quiet hours,
 * conversations muted until a time, and the kinds each device alerts for. Every value is
 * checked here, so the Ozeki API and /v1 refuse the same things in the same words; a
 * refused change changes nothing. After a change every node re-reads the user (the view).
 */

/** The furthest ahead do-not-disturb or a conversation's mute may run. */
export const MAX_AHEAD_MS = 366 * 24 * 60 * 60 * 1000;
/** Conversations one user may have muted until a time at once. */
export const MAX_CONVERSATION_MUTES = 1000;
export const MAX_CONVERSATION_ID = 200;
/** Kinds one device may list. */
export const MAX_ALERT_KINDS = 50;
/** Herald's own kinds that alert; a backend's namespaced kinds (`app.invoice`) may be listed too. */
export const ALERTING_KINDS = [
  'message',
  'system.friend_request',
  'system.agree_friend_request',
  'system.group_invitation',
  'subscription',
];

/** A change: each field given is replaced (null clears it); a field left out stays as it is. */
export interface PreferencesChange {
  dndUntil?: number | null;
  quietHours?: QuietHours | null;
  /** Conversation id → muted until (unix ms), or null to end the mute; others stay. */
  conversationMutes?: Record<string, number | null>;
  /** Station → the kinds that alert on it, or null for every kind; other devices stay. */
  alertKinds?: Record<string, string[] | null>;
}

/** Where a user's preferences stand. */
export interface PreferencesState {
  /** While do-not-disturb is in force; null otherwise. */
  dndUntil: number | null;
  quietHours: QuietHours | null;
  /** The conversations muted until a time still to come. */
  conversationMutes: Record<string, number>;
  /** Every device of the user: its kinds, or null when every kind alerts. */
  alertKinds: Record<string, string[] | null>;
  /** True when the user's new notifications are silent now (do-not-disturb or quiet hours). */
  silentNow: boolean;
}

/** A time that ends a do-not-disturb or a mute: in the future, at most MAX_AHEAD_MS away. */
export function checkUntil(value: number, field: string, now: number): number {
  if (!Number.isSafeInteger(value) || value <= now) throw badRequest(`${field} must be a time in the future (or null to end it)`);
  if (value > now + MAX_AHEAD_MS) throw badRequest(`${field} may be at most 366 days ahead`);
  return value;
}

/**
 * The zone's name as the user spelled it, with Intl's capitals when only they differ;
 * undefined when Intl does not know it. An alias (Asia/Kolkata, Asia/Calcutta) keeps the
 * user's spelling: which of the two Intl calls canonical depends on the ICU of the Node
 * running, and the user should read back what they chose.
 */
function canonicalTimeZone(name: string): string | undefined {
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat(undefined, { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
  return resolved.toLowerCase() === name.toLowerCase() ? resolved : name;
}

/** Quiet hours as sent: `start` and `end` `HH:MM`, `timezone` an IANA zone, `days` mon…sun (all when left out). */
export function checkQuietHours(value: { start: unknown; end: unknown; timezone: unknown; days?: unknown }): QuietHours {
  const { start, end, timezone, days } = value;
  for (const [name, time] of [
    ['start', start],
    ['end', end],
  ] as const) {
    if (typeof time !== 'string' || minutesOfDay(time) === undefined) {
      throw badRequest(`quiethours.${name} must be a time of day written HH:MM, from 00:00 to 23:59`);
    }
  }
  if (start === end) throw badRequest('quiethours.start and quiethours.end must differ (for a whole day use do-not-disturb)');
  if (typeof timezone !== 'string' || timezone === '' || timezone.length > 64) {
    throw badRequest('quiethours.timezone must be an IANA time zone such as Europe/Budapest');
  }
  const zone = canonicalTimeZone(timezone);
  if (zone === undefined) throw badRequest(`quiethours.timezone "${timezone}" is not an IANA time zone (such as Europe/Budapest)`);
  let chosen: Weekday[] = [...WEEKDAYS];
  if (days !== undefined && days !== null) {
    if (!Array.isArray(days) || days.length === 0 || days.some((d) => typeof d !== 'string' || !WEEKDAYS.includes(d as Weekday))) {
      throw badRequest(`quiethours.days must be a non-empty list of ${WEEKDAYS.join(', ')}`);
    }
    chosen = WEEKDAYS.filter((d) => days.includes(d));
  }
  return { start: start as string, end: end as string, timeZone: zone, days: chosen };
}

/** The kinds that alert on a device: Herald's alerting kinds and backends' own, each once. */
export function checkAlertKinds(value: unknown, field: string): string[] | null {
  if (value === null) return null;
  if (!Array.isArray(value)) throw badRequest(`${field} must be a list of kinds, or null for every kind`);
  if (value.length > MAX_ALERT_KINDS) throw badRequest(`${field} holds more than ${MAX_ALERT_KINDS} kinds`);
  for (const [i, kind] of value.entries()) {
    if (typeof kind !== 'string' || !(ALERTING_KINDS.includes(kind) || isCustomKind(kind))) {
      throw badRequest(`${field}[${i}] must be one of ${ALERTING_KINDS.join(', ')} or a namespaced kind such as app.invoice`);
    }
  }
  return [...new Set(value as string[])];
}

/** A conversation id a mute names: as notifications carry it, 1 to 200 characters. */
export function checkConversationId(id: string, field: string): string {
  if (id === '' || id.length > MAX_CONVERSATION_ID)
    throw badRequest(`${field} names a conversation id of 1 to ${MAX_CONVERSATION_ID} characters`);
  return id;
}

const tooManyMutes = () =>
  badRequest(`conversationmutes: at most ${MAX_CONVERSATION_MUTES} conversations may be muted until a time at once`);

export async function readPreferences(db: Kysely<Database>, userId: string, now = Date.now()): Promise<PreferencesState> {
  const row = await db.selectFrom('user_preferences').selectAll().where('user_id', '=', userId).executeTakeFirst();
  const mutes = await db
    .selectFrom('conversation_mutes')
    .select(['conversation_id', 'until'])
    .where('user_id', '=', userId)
    .where('until', '>', now)
    .orderBy('conversation_id')
    .execute();
  const devices = await db
    .selectFrom('devices')
    .select(['station', 'alert_kinds'])
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .execute();
  const dndUntil = row?.dnd_until != null && row.dnd_until > now ? row.dnd_until : null;
  const quietHours = row ? preferencesQuietHours(row) : null;
  return {
    dndUntil,
    quietHours,
    conversationMutes: Object.fromEntries(mutes.map((m) => [m.conversation_id, m.until])),
    alertKinds: Object.fromEntries(
      devices.map((d) => [d.station, d.alert_kinds === null ? null : (JSON.parse(d.alert_kinds) as string[])]),
    ),
    silentNow: dndUntil !== null || (quietHours !== null && isQuietAt(quietHours, now)),
  };
}

/**
 * Applies a change (already checked field by field) in one transaction; a station that is
 * not the user's, or too many mutes, refuses all of it. Then every node re-reads the user.
 */
export async function changePreferences(
  db: Kysely<Database>,
  view: Pick<PreferenceView, 'reloadUser'>,
  bus: Pick<Bus, 'publishPreferences'>,
  userId: string,
  change: PreferencesChange,
  now = Date.now(),
): Promise<PreferencesState> {
  await db.transaction().execute(async (trx) => {
    if (change.dndUntil !== undefined || change.quietHours !== undefined) {
      const quiet = change.quietHours;
      const quietColumns =
        quiet === undefined
          ? {}
          : {
              quiet_start: quiet?.start ?? null,
              quiet_end: quiet?.end ?? null,
              quiet_zone: quiet?.timeZone ?? null,
              quiet_days: quiet ? quiet.days.join(',') : null,
            };
      const dndColumn = change.dndUntil === undefined ? {} : { dnd_until: change.dndUntil };
      await trx
        .insertInto('user_preferences')
        .values({
          user_id: userId,
          dnd_until: null,
          quiet_start: null,
          quiet_end: null,
          quiet_zone: null,
          quiet_days: null,
          ...quietColumns,
          ...dndColumn,
          updated_at: now,
        })
        .onConflict((oc) => oc.column('user_id').doUpdateSet({ ...quietColumns, ...dndColumn, updated_at: now }))
        .execute();
    }

    const mutes = Object.entries(change.conversationMutes ?? {});
    if (mutes.length > MAX_CONVERSATION_MUTES) throw tooManyMutes();
    if (mutes.length > 0) {
      // What has run out goes first, so it does not count against the limit.
      await trx.deleteFrom('conversation_mutes').where('user_id', '=', userId).where('until', '<=', now).execute();
      const ended = mutes.filter(([, until]) => until === null).map(([id]) => id);
      if (ended.length > 0) {
        await trx.deleteFrom('conversation_mutes').where('user_id', '=', userId).where('conversation_id', 'in', ended).execute();
      }
      for (const [conversationId, until] of mutes) {
        if (until === null) continue;
        await trx
          .insertInto('conversation_mutes')
          .values({ user_id: userId, conversation_id: conversationId, until })
          .onConflict((oc) => oc.columns(['user_id', 'conversation_id']).doUpdateSet({ until }))
          .execute();
      }
      const { count } = await trx
        .selectFrom('conversation_mutes')
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .where('user_id', '=', userId)
        .executeTakeFirstOrThrow();
      if (Number(count) > MAX_CONVERSATION_MUTES) throw tooManyMutes();
    }

    const devices = Object.entries(change.alertKinds ?? {});
    if (devices.length > 0) {
      const stations = devices.map(([station]) => station);
      const own = new Set(
        (await trx.selectFrom('devices').select('station').where('user_id', '=', userId).where('station', 'in', stations).execute()).map(
          (d) => d.station,
        ),
      );
      const stranger = stations.find((s) => !own.has(s));
      if (stranger !== undefined) throw badRequest(`${stranger} is not a device of this user`);
      for (const [station, kinds] of devices) {
        await trx
          .updateTable('devices')
          .set({ alert_kinds: kinds === null ? null : JSON.stringify(kinds) })
          .where('station', '=', station)
          .execute();
      }
    }
  });
  await view.reloadUser(userId);
  // The other nodes also re-read everyone every minute, which covers a message lost here.
  await bus.publishPreferences(userId).catch(() => {});
  return readPreferences(db, userId, now);
}
