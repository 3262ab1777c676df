import { badRequest } from '../../errors.ts';
import { formatOzekiTime, parseOzekiTime } from '../../chat/ids.ts';
import {
  checkAlertKinds,
  checkConversationId,
  checkQuietHours,
  checkUntil,
  type PreferencesChange,
  type PreferencesState,
} from '../../chat/preferences.ts';
import type { Preferences } from '../../chat/services.ts';

/*
 * `chatpreferences`: `get` and `set` of the caller's alert preferences. Times are Ozeki
 * times (`yyyy-MM-dd HH:mm:ss`, UTC) like the rest of this API; `alertkinds` is the calling
 * station's own choice.
 */

const FIELDS = ['dnduntil', 'quiethours', 'conversationmutes', 'alertkinds'] as const;

/** The answer of both actions. */
function describe(state: PreferencesState, station: string) {
  return {
    preferences: {
      dnduntil: state.dndUntil === null ? null : formatOzekiTime(state.dndUntil),
      quiethours: state.quietHours && {
        start: state.quietHours.start,
        end: state.quietHours.end,
        timezone: state.quietHours.timeZone,
        days: state.quietHours.days,
      },
      conversationmutes: Object.fromEntries(Object.entries(state.conversationMutes).map(([id, until]) => [id, formatOzekiTime(until)])),
      alertkinds: state.alertKinds[station] ?? null,
      silentnow: state.silentNow,
    },
  };
}

/** An Ozeki time in the future, or null (or "") to end what it times. */
function until(value: unknown, field: string, now: number): number | null {
  if (value === null || value === '') return null;
  const ms = typeof value === 'string' ? parseOzekiTime(value) : null;
  if (ms === null) throw badRequest(`${field} must be a UTC time written yyyy-MM-dd HH:mm:ss, or null to end it`);
  return checkUntil(ms, field, now);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The change a `set` body asks for, every field checked; a field left out stays as it is. */
export function preferencesChange(body: Record<string, unknown>, station: string, now = Date.now()): PreferencesChange {
  if (!FIELDS.some((field) => Object.hasOwn(body, field))) throw badRequest(`set needs at least one of ${FIELDS.join(', ')}`);
  const change: PreferencesChange = {};
  if (Object.hasOwn(body, 'dnduntil')) change.dndUntil = until(body.dnduntil, 'dnduntil', now);
  if (Object.hasOwn(body, 'quiethours')) {
    const quiet = body.quiethours;
    if (quiet !== null && !isObject(quiet)) throw badRequest('quiethours must be an object {start, end, timezone, days} or null');
    change.quietHours = quiet === null ? null : checkQuietHours(quiet as Parameters<typeof checkQuietHours>[0]);
  }
  if (Object.hasOwn(body, 'conversationmutes')) {
    const mutes = body.conversationmutes;
    if (!isObject(mutes)) throw badRequest('conversationmutes must be an object {conversationid: time or null}');
    change.conversationMutes = {};
    for (const [id, time] of Object.entries(mutes)) {
      change.conversationMutes[checkConversationId(id, 'conversationmutes')] = until(time, `conversationmutes.${id}`, now);
    }
  }
  if (Object.hasOwn(body, 'alertkinds')) change.alertKinds = { [station]: checkAlertKinds(body.alertkinds, 'alertkinds') };
  return change;
}

export async function getPreferences(preferences: Pick<Preferences, 'get'>, userId: string, station: string) {
  return describe(await preferences.get(userId), station);
}

export async function setPreferences(
  preferences: Pick<Preferences, 'change'>,
  userId: string,
  station: string,
  body: Record<string, unknown>,
) {
  return describe(await preferences.change(userId, preferencesChange(body, station)), station);
}
