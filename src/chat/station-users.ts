import type { Kysely } from 'kysely';
import type { Bus } from '../cluster/bus.ts';
import type { Database } from '../store/schema.ts';
import type { SecretBox } from '../store/secrets.ts';
import { apiKeyOf, userOfStation, type User } from './users.ts';

/** A station's user, with the API key that signs their calls (opened once per memory entry). */
export type StationUser = User & { apikey: string };

/** How long a station's user is taken from memory before the database is asked again. */
const STATION_MEMORY_MS = 10_000;
/** Stations remembered at once; the oldest entry goes first. */
const MAX_REMEMBERED_STATIONS = 100_000;

/**
 * Station → user for the calls after login, kept in memory for a few seconds: every call
 * would otherwise begin with the same database lookup. The binding itself never changes (a
 * station cannot move to another user); a device removed or replaced is forgotten at once on
 * every node (bus disconnect), and the time bound covers a disconnect the bus lost. Only
 * fields that never change (id, name, nick) and the API key are used from it: a key reset
 * reaches signed calls of stations already bound within that time.
 */
export class StationUsers {
  private readonly entries = new Map<string, { user: StationUser; until: number }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly secrets: SecretBox,
    bus: Pick<Bus, 'onDisconnect'>,
  ) {
    bus.onDisconnect(({ station }) => this.entries.delete(station));
  }

  async get(station: string): Promise<StationUser | undefined> {
    const now = Date.now();
    const remembered = this.entries.get(station);
    if (remembered && remembered.until > now) return remembered.user;
    this.entries.delete(station);
    const row = await userOfStation(this.db, station);
    if (!row) return undefined;
    const user: StationUser = { ...row, apikey: apiKeyOf(this.secrets, row) };
    if (this.entries.size >= MAX_REMEMBERED_STATIONS) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(station, { user, until: now + STATION_MEMORY_MS });
    return user;
  }
}
