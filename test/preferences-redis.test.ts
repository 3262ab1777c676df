import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES, SQLITE, TEST_REDIS_URL } from './helpers/stores.ts';
import { ADMIN_TOKEN, addUser, startTestServer, waitFor, type TestServer } from './helpers/server.ts';
import { RedisBus } from '../src/cluster/redis-bus.ts';
import type { Store } from '../src/store/db.ts';

if (!TEST_REDIS_URL) console.warn('HERALD_TEST_REDIS_URL is unset: the preferences case over the Redis bus is skipped');

describe.skipIf(!TEST_REDIS_URL)('preferences across nodes joined by the Redis bus', () => {
  let store: Store;
  let nodeA: TestServer;
  let nodeB: TestServer;

  beforeAll(async () => {
    const kind = POSTGRES ?? SQLITE;
    store = await kind.open();
    const [busA, busB] = [await RedisBus.connect(TEST_REDIS_URL!), await RedisBus.connect(TEST_REDIS_URL!)];
    nodeA = await startTestServer(kind, {}, { store, bus: busA, spentSignatures: busA });
    nodeB = await startTestServer(kind, {}, { store, bus: busB, spentSignatures: busB });
  });
  afterAll(async () => {
    await nodeA?.stop();
    await nodeB?.stop();
    await store?.close();
  });

  it('do-not-disturb set through node A silences Bob on node B, and ending it there ends it on A', async () => {
    const bob = await addUser(nodeA, 'Bob');
    const put = (node: TestServer, body: unknown) =>
      fetch(`${node.http}/v1/users/${bob.userid}/preferences`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await put(nodeA, { dnduntil: Date.now() + 3600_000, devicealertkinds: { [bob.client.station]: ['message'] } })).status).toBe(
      200,
    );
    await waitFor(() => nodeB.app.parts.preferences.silences(bob.userid, null, Date.now()) === 'dnd', 5000, 'node B to learn of it');
    expect(nodeB.app.parts.preferences.alertsOn(bob.userid, bob.client.station, 'app.invoice')).toBe(false);

    expect((await put(nodeB, { dnduntil: null, devicealertkinds: { [bob.client.station]: null } })).status).toBe(200);
    await waitFor(() => nodeA.app.parts.preferences.silences(bob.userid, null, Date.now()) === undefined, 5000, 'node A to learn of it');
    expect(nodeA.app.parts.preferences.alertsOn(bob.userid, bob.client.station, 'app.invoice')).toBe(true);
  });
});
