import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import type { Store } from '../src/store/db.ts';
import { createUser } from '../src/chat/users.ts';
import { bindStation, recordLiveProgress } from '../src/chat/devices.ts';

const station = (i: number) => i.toString(16).padStart(32, '0');

describeEachStore('live progress of many devices', (kind) => {
  let store: Store;
  const DEVICES = 1200;

  beforeAll(async () => {
    store = await kind.open();
    const { userid } = await createUser(store.db, store.secrets, { email: 'ann@example.org', name: 'Ann' });
    await store.db.transaction().execute(async (trx) => {
      for (let i = 0; i < DEVICES; i++) await bindStation(trx, store.secrets, station(i), userid, 'browser');
    });
  });
  afterAll(async () => store?.close());

  const progressOf = async (i: number) =>
    store.db
      .selectFrom('devices')
      .select(['acked_seq', 'delivered_seq', 'last_seen_at'])
      .where('station', '=', station(i))
      .executeTakeFirstOrThrow();

  it('writes every device of a batch larger than one statement takes', async () => {
    await recordLiveProgress(
      store.db,
      Array.from({ length: DEVICES }, (_, i) => ({ station: station(i), ackedSeq: i, deliveredSeq: i + 1, seenAt: 1000 + i })),
    );
    for (const i of [0, 1, 499, 500, 999, 1000, DEVICES - 1]) {
      expect(await progressOf(i)).toEqual({ acked_seq: i, delivered_seq: i + 1, last_seen_at: 1000 + i });
    }
  });

  it('never moves a sequence back, and takes the highest of two entries for one station', async () => {
    await recordLiveProgress(store.db, [
      { station: station(10), ackedSeq: 3, deliveredSeq: 4, seenAt: 5000 },
      { station: station(20), ackedSeq: 50, deliveredSeq: 7, seenAt: 5000 },
      { station: station(20), ackedSeq: 40, deliveredSeq: 60, seenAt: 6000 },
    ]);
    // Station 10 had acked 10 and been sent 11: both stay; only the time it was seen moves.
    expect(await progressOf(10)).toEqual({ acked_seq: 10, delivered_seq: 11, last_seen_at: 5000 });
    expect(await progressOf(20)).toEqual({ acked_seq: 50, delivered_seq: 60, last_seen_at: 6000 });
  });

  it('passes over a device that is gone', async () => {
    await recordLiveProgress(store.db, [
      { station: 'f'.repeat(32), ackedSeq: 1, deliveredSeq: 1, seenAt: 1 },
      { station: station(30), ackedSeq: 31, deliveredSeq: 32, seenAt: 7000 },
    ]);
    expect(await progressOf(30)).toEqual({ acked_seq: 31, delivered_seq: 32, last_seen_at: 7000 });
    expect(await store.db.selectFrom('devices').select('station').where('station', '=', 'f'.repeat(32)).execute()).toEqual([]);
  });
});
