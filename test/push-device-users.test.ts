import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../src/store/db.ts';
import { LocalBus } from '../src/cluster/bus.ts';
import { Notifier } from '../src/notify/notifier.ts';
import { createUser } from '../src/chat/users.ts';
import { bindStation, registerDevice } from '../src/chat/devices.ts';
import { newStation } from './helpers/server.ts';
import { apnsToken } from './mocks/push-env.ts';

/**
 * A SQLite store keeps in memory which users may have a push device, and queues no outbox
 * row for the others without asking the database. These are the ways that memory could miss
 * a push device; after each, the next message must still queue its push.
 */
describe('users with push devices, remembered on sqlite', () => {
  let dir: string;
  let file: string;
  let store: Store;
  let notifier: Notifier;
  let held: Notifier;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-push-users-'));
    file = path.join(dir, 'herald.db');
    store = await openStore({ sqliteFile: file });
    notifier = new Notifier(store, new LocalBus());
    held = new Notifier(store, new LocalBus(), undefined, undefined, { holdMs: 60_000, activeWindowMs: 30_000 });
  });
  afterAll(async () => {
    await store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function userWithDevice(on: Store, name: string): Promise<{ userId: string; station: string }> {
    const { userid } = await createUser(on.db, on.secrets, { email: `${name}-${newStation()}@example.org`, name });
    const station = newStation();
    await bindStation(on.db, on.secrets, station, userid, 'ios');
    return { userId: userid, station };
  }

  const outboxRows = async (userId: string) =>
    (await store.db.selectFrom('deliveries').select('id').where('user_id', '=', userId).execute()).length;

  /** A message to the user; says how many outbox rows it queued (and checks the notifier said the same). */
  async function pushesQueued(userId: string, through = notifier): Promise<number> {
    const before = await outboxRows(userId);
    let said = -1;
    const listen = (notifications: { userId: string }[], pushes: number) => {
      if (notifications.some((n) => n.userId === userId)) said = pushes;
    };
    through.onCommitted(listen);
    await through.transact((_trx, emit) => emit([{ userId, type: 'message', title: '1 message from Ann', unread: 1 }]));
    const queued = (await outboxRows(userId)) - before;
    expect(said).toBe(queued);
    return queued;
  }

  it('a push token registered after the memory was loaded', async () => {
    const bob = await userWithDevice(store, 'Bob');
    expect(await pushesQueued(bob.userId)).toBe(0);
    await registerDevice(store.db, bob.station, bob.userId, { platform: 'ios', pushToken: apnsToken() });
    expect(await pushesQueued(bob.userId)).toBe(1);
    expect(await pushesQueued(bob.userId, held)).toBe(1);
  });

  it('a push device added by another connection to the same file', async () => {
    expect(await pushesQueued((await userWithDevice(store, 'Warm')).userId)).toBe(0);
    const other = await openStore({ sqliteFile: file });
    let carol: { userId: string; station: string };
    try {
      carol = await userWithDevice(other, 'Carol');
      await registerDevice(other.db, carol.station, carol.userId, { platform: 'ios', pushToken: apnsToken() });
    } finally {
      await other.close();
    }
    expect(await pushesQueued(carol.userId)).toBe(1);
  });

  it('pushes turned off, then on again', async () => {
    const dan = await userWithDevice(store, 'Dan');
    await registerDevice(store.db, dan.station, dan.userId, { platform: 'ios', pushToken: apnsToken() });
    await store.db
      .updateTable('devices')
      .set({ push_disabled_at: Date.now(), push_disabled_reason: 'gone' })
      .where('station', '=', dan.station)
      .execute();
    expect(await pushesQueued(dan.userId)).toBe(0);
    // Another user's device keeps the memory loaded, then Dan's comes back.
    expect(await pushesQueued((await userWithDevice(store, 'Eve')).userId)).toBe(0);
    await store.db
      .updateTable('devices')
      .set({ push_disabled_at: null, push_disabled_reason: null })
      .where('station', '=', dan.station)
      .execute();
    expect(await pushesQueued(dan.userId)).toBe(1);
  });

  it('a push token removed queues nothing more', async () => {
    const fay = await userWithDevice(store, 'Fay');
    await registerDevice(store.db, fay.station, fay.userId, { platform: 'ios', pushToken: apnsToken() });
    expect(await pushesQueued(fay.userId)).toBe(1);
    await registerDevice(store.db, fay.station, fay.userId, { platform: 'ios', pushToken: null });
    expect(await pushesQueued(fay.userId)).toBe(0);
  });
});
