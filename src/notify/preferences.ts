import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';
import type { NotificationType } from '../model/notification.ts';

/*
 * Users' alert preferences as every notification consults them: do-not-disturb until a
 * time, quiet hours in the user's own time zone, conversations muted until a time, and the
 * kinds each device alerts for. The hot path asks this per recipient, so a node keeps in
 * memory only the users who have something set, and a recipient without preferences costs
 * one failed Map look-up. The database is the record (chat/preferences.ts writes it); a
 * node re-reads a user when told over the bus that they changed, and everything now and then.
 */

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** Quiet hours: from `start` to `end` (wall-clock `HH:MM` in `timeZone`), beginning on `days`. */
export interface QuietHours {
  start: string;
  end: string;
  timeZone: string;
  days: Weekday[];
}

/** Why a notification was made silent, the first that holds in this order. */
export type SilenceReason = 'dnd' | 'conversation_mute' | 'quiet_hours';

/** What feed.ts asks of preferences when it turns drafts into notifications. */
export interface Silencer {
  /** Why the user's notification in this conversation must not alert now; undefined when it may. */
  silences(userId: string, conversationId: string | null | undefined, now: number): SilenceReason | undefined;
  /** Told how many notifications of one append were made silent, by reason. */
  counted?(reason: SilenceReason, count: number): void;
}

/** What the outbox asks of preferences when it builds a device's push. */
export interface DeviceAlerts {
  /** False when the device's user chose that this kind does not alert on it. */
  alertsOn(userId: string, station: string, type: NotificationType): boolean;
}

/** Quiet hours made ready for checking: minutes of the day and a set of weekday numbers. */
interface CompiledQuiet {
  start: number;
  end: number;
  timeZone: string;
  /** Bit i set: a quiet period starts on weekday i (0 = Sunday). */
  days: number;
}

interface UserEntry {
  dndUntil: number | null;
  quiet: CompiledQuiet | null;
  mutes: Map<string, number> | null;
}

/** `HH:MM` → minutes after midnight, or undefined. */
export function minutesOfDay(text: string): number | undefined {
  const match = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text);
  return match ? Number(match[1]) * 60 + Number(match[2]) : undefined;
}

function compileQuiet(quiet: QuietHours): CompiledQuiet {
  let days = 0;
  for (const day of quiet.days) days |= 1 << WEEKDAYS.indexOf(day);
  return { start: minutesOfDay(quiet.start)!, end: minutesOfDay(quiet.end)!, timeZone: quiet.timeZone, days };
}

/** The wall clock of a time zone, read at most once a minute per zone. */
class ZoneClocks {
  private readonly zones = new Map<string, { format: Intl.DateTimeFormat; minute: number; day: number; minuteOfDay: number }>();

  /** Weekday (0 = Sunday) and minute of the day in `timeZone` at `now`. */
  read(timeZone: string, now: number): { day: number; minuteOfDay: number } {
    let zone = this.zones.get(timeZone);
    if (!zone) {
      const format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', weekday: 'short', hour: '2-digit', minute: '2-digit' });
      zone = { format, minute: -1, day: 0, minuteOfDay: 0 };
      this.zones.set(timeZone, zone);
    }
    // Every zone in use today is a whole number of minutes off UTC, so its wall clock turns
    // over only where UTC's minutes do.
    const minute = Math.floor(now / 60_000);
    if (zone.minute !== minute) {
      let day = 0;
      let hour = 0;
      let min = 0;
      for (const part of zone.format.formatToParts(now)) {
        if (part.type === 'weekday') day = WEEKDAY_NAMES.indexOf(part.value);
        else if (part.type === 'hour') hour = Number(part.value);
        else if (part.type === 'minute') min = Number(part.value);
      }
      zone.minute = minute;
      zone.day = day;
      zone.minuteOfDay = hour * 60 + min;
    }
    return zone;
  }
}
const WEEKDAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/**
 * True while a quiet period runs. A period belongs to the day it starts on: 22:00–07:00 on
 * `fri` is quiet from Friday 22:00 to Saturday 07:00, and not on Friday morning.
 */
function quietNow(quiet: CompiledQuiet, clocks: ZoneClocks, now: number): boolean {
  const { day, minuteOfDay } = clocks.read(quiet.timeZone, now);
  const startedToday = (quiet.days & (1 << day)) !== 0;
  if (quiet.start < quiet.end) return startedToday && minuteOfDay >= quiet.start && minuteOfDay < quiet.end;
  const startedYesterday = (quiet.days & (1 << ((day + 6) % 7))) !== 0;
  return (startedToday && minuteOfDay >= quiet.start) || (startedYesterday && minuteOfDay < quiet.end);
}

/** True when quiet hours hold at `now` (for answers and tests; the hot path uses the view). */
export function isQuietAt(quiet: QuietHours, now: number): boolean {
  return quietNow(compileQuiet(quiet), new ZoneClocks(), now);
}

/** Loads users' preferences from the database: one, or everyone with something in force. */
async function readEntries(db: Kysely<Database>, now: number, userId?: string) {
  let preferences = db.selectFrom('user_preferences').selectAll();
  let mutes = db.selectFrom('conversation_mutes').selectAll().where('until', '>', now);
  let devices = db.selectFrom('devices').select(['station', 'user_id', 'alert_kinds']).where('alert_kinds', 'is not', null);
  if (userId !== undefined) {
    preferences = preferences.where('user_id', '=', userId);
    mutes = mutes.where('user_id', '=', userId);
    devices = devices.where('user_id', '=', userId);
  } else {
    preferences = preferences.where((eb) => eb.or([eb('dnd_until', '>', now), eb('quiet_start', 'is not', null)]));
  }
  const entries = new Map<string, UserEntry>();
  const entryOf = (id: string) => {
    let entry = entries.get(id);
    if (!entry) entries.set(id, (entry = { dndUntil: null, quiet: null, mutes: null }));
    return entry;
  };
  for (const row of await preferences.execute()) {
    const active = row.dnd_until !== null && row.dnd_until > now;
    const quiet = preferencesQuietHours(row);
    if (!active && !quiet) continue;
    const entry = entryOf(row.user_id);
    entry.dndUntil = active ? row.dnd_until : null;
    entry.quiet = quiet ? compileQuiet(quiet) : null;
  }
  for (const row of await mutes.execute()) (entryOf(row.user_id).mutes ??= new Map()).set(row.conversation_id, row.until);
  const kinds = new Map<string, { userId: string; kinds: ReadonlySet<string> }>();
  for (const row of await devices.execute()) {
    kinds.set(row.station, { userId: row.user_id, kinds: new Set(JSON.parse(row.alert_kinds!) as string[]) });
  }
  return { entries, kinds };
}

/** The quiet hours a stored row holds, or null. */
export function preferencesQuietHours(row: {
  quiet_start: string | null;
  quiet_end: string | null;
  quiet_zone: string | null;
  quiet_days: string | null;
}): QuietHours | null {
  if (row.quiet_start === null || row.quiet_end === null || row.quiet_zone === null || row.quiet_days === null) return null;
  return { start: row.quiet_start, end: row.quiet_end, timeZone: row.quiet_zone, days: row.quiet_days.split(',') as Weekday[] };
}

/** Types whose pushes always show what they are: a badge reset, and the operator's test push. */
const NEVER_WITHHELD: ReadonlySet<NotificationType> = new Set(['clean', 'test']);

/**
 * One node's view of every user who has a preference in force, and of every device that
 * alerts for only some kinds. Built once at start (`load`), then kept current by `reloadUser`
 * (after a change on this node, or one announced by another node) and by a full `reload`
 * every so often, which also drops what has run out.
 */
export class PreferenceView implements Silencer, DeviceAlerts {
  private entries = new Map<string, UserEntry>();
  private deviceKinds = new Map<string, { userId: string; kinds: ReadonlySet<string> }>();
  private readonly clocks = new ZoneClocks();
  /** Moves on with every reloadUser, so a full reload read before it does not overwrite it. */
  private generation = 0;
  /** User re-reads run one after another, so an older read never lands after a newer one. */
  private userReads: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly onSilenced?: (reason: SilenceReason, count: number) => void,
  ) {}

  /** Loads the view and re-reads all of it every `refreshMs` (a missed bus message cannot last). */
  static async load(
    db: Kysely<Database>,
    { refreshMs = 60_000, onSilenced }: { refreshMs?: number; onSilenced?: (reason: SilenceReason, count: number) => void } = {},
  ): Promise<PreferenceView> {
    const view = new PreferenceView(db, onSilenced);
    await view.reload();
    if (refreshMs > 0) {
      view.timer = setInterval(() => void view.reload().catch(() => {}), refreshMs);
      view.timer.unref();
    }
    return view;
  }

  /** How many users have a preference in force on this node's view. */
  get size(): number {
    return this.entries.size;
  }

  silences(userId: string, conversationId: string | null | undefined, now: number): SilenceReason | undefined {
    const entry = this.entries.get(userId);
    if (entry === undefined) return undefined;
    if (entry.dndUntil !== null && now < entry.dndUntil) return 'dnd';
    if (conversationId && entry.mutes !== null) {
      const until = entry.mutes.get(conversationId);
      if (until !== undefined && now < until) return 'conversation_mute';
    }
    if (entry.quiet !== null && quietNow(entry.quiet, this.clocks, now)) return 'quiet_hours';
    return undefined;
  }

  counted(reason: SilenceReason, count: number): void {
    this.onSilenced?.(reason, count);
  }

  alertsOn(userId: string, station: string, type: NotificationType): boolean {
    const device = this.deviceKinds.get(station);
    if (device === undefined || device.userId !== userId || NEVER_WITHHELD.has(type)) return true;
    return device.kinds.has(type);
  }

  /** Re-reads everyone with something in force. */
  async reload(): Promise<void> {
    const generation = this.generation;
    const { entries, kinds } = await readEntries(this.db, Date.now());
    // A user re-read meanwhile is newer than this read; the next reload takes everything.
    if (generation !== this.generation) return;
    this.entries = entries;
    this.deviceKinds = kinds;
  }

  /** Re-reads one user: after they changed something here, or on another node. */
  reloadUser(userId: string): Promise<void> {
    const read = this.userReads.then(() => this.readUser(userId));
    this.userReads = read.catch(() => {});
    return read;
  }

  private async readUser(userId: string): Promise<void> {
    this.generation++;
    const { entries, kinds } = await readEntries(this.db, Date.now(), userId);
    const entry = entries.get(userId);
    if (entry) this.entries.set(userId, entry);
    else this.entries.delete(userId);
    for (const [station, device] of this.deviceKinds) if (device.userId === userId && !kinds.has(station)) this.deviceKinds.delete(station);
    for (const [station, device] of kinds) this.deviceKinds.set(station, device);
  }

  /** A device was removed: whatever it chose goes with it. */
  forgetStation(station: string): void {
    this.deviceKinds.delete(station);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
