import type SQLite from 'better-sqlite3';

/** Users this memory holds at most; beyond that it stops filtering (every recipient is asked). */
const MAX_KNOWN_USERS = 200_000;

/** How often the memory starts over, so users whose last push device went are dropped. */
const RELOAD_MS = 10 * 60_000;

/** What makes a device one that takes pushes, of a row named `row` (the partial index devices_push_user holds just these). */
export function pushDevice(row: string): string {
  return `${row}.push_token IS NOT NULL AND ${row}.push_provider IS NOT NULL AND ${row}.push_disabled_at IS NULL`;
}

/**
 * SQLite: which users may have a device that takes pushes, known in memory, so a message to
 * a large group whose members are connected live only (browsers, desktop apps) queues its
 * pushes without asking the database once per recipient: in the fan-out bench that join was
 * a tenth of the server's CPU time for no row at all.
 *
 * The memory may hold a user who has no push device any more (that costs one join, as
 * before), never miss one who has:
 * - it is loaded from the devices table;
 * - this connection's own writes reach it through a temporary trigger (a temporary trigger
 *   lives on this connection only, so another process opening the file, such as the CLI,
 *   meets no unknown function);
 * - a commit of another connection (SQLite's data_version tells) makes it load again;
 * - a transaction that rolls back only leaves a user too many.
 */
export class PushDeviceUsers {
  private users: Set<string> | undefined;
  /** Too many users to keep: every recipient is asked, as without this memory. */
  private everyone = false;
  private version: unknown;
  private loadedAt = 0;
  private readonly dataVersion: SQLite.Statement;
  private readonly load: SQLite.Statement;

  constructor(database: SQLite.Database) {
    this.dataVersion = database.prepare('PRAGMA data_version').pluck();
    this.load = database.prepare(`SELECT DISTINCT d.user_id FROM devices AS d WHERE ${pushDevice('d')}`).pluck();
    database.function('herald_push_device_user', { deterministic: false }, (userId: unknown) => {
      this.add(String(userId));
      return null;
    });
    const told = 'BEGIN SELECT herald_push_device_user(NEW.user_id); END';
    database.exec(`CREATE TEMP TRIGGER IF NOT EXISTS herald_push_device_added AFTER INSERT ON main.devices
      WHEN ${pushDevice('NEW')} ${told}`);
    database.exec(`CREATE TEMP TRIGGER IF NOT EXISTS herald_push_device_changed
      AFTER UPDATE OF user_id, push_token, push_provider, push_disabled_at ON main.devices
      WHEN ${pushDevice('NEW')} ${told}`);
  }

  /** Whether `userId` may have a push device (true when in doubt). */
  mayHave(userId: string): boolean {
    return this.everyone || this.users!.has(userId);
  }

  /** Brings the memory up to date; call before mayHave, once per statement that queues pushes. */
  refresh(now = Date.now()): void {
    const version = this.dataVersion.get();
    if (this.users && version === this.version && now - this.loadedAt < RELOAD_MS) return;
    this.version = version;
    this.loadedAt = now;
    this.users = new Set();
    this.everyone = false;
    for (const userId of this.load.iterate() as IterableIterator<string>) {
      this.add(userId);
      if (this.everyone) break;
    }
  }

  private add(userId: string): void {
    if (this.everyone || !this.users) return;
    this.users.add(userId);
    if (this.users.size > MAX_KNOWN_USERS) {
      this.everyone = true;
      this.users.clear();
    }
  }
}
