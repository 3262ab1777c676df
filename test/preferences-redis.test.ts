import { describe, expect, it } from 'vitest';
import { TEST_REDIS_URL } from './helpers/stores.ts';
import { useRedisNodes } from './helpers/redis-nodes.ts';
import { ADMIN_TOKEN, addUser, waitFor, type TestServer } from './helpers/server.ts';

if (!TEST_REDIS_URL) console.warn('HERALD_TEST_REDIS_URL is unset: the preferences case over the Redis bus is skipped');

describe.skipIf(!TEST_REDIS_URL)('preferences across nodes joined by the Redis bus', () => {
  const nodes = useRedisNodes();

  it('do-not-disturb set through node A silences Bob on node B, and ending it there ends it on A', async () => {
    const bob = await addUser(nodes.a, 'Bob');
    const put = (node: TestServer, body: unknown) =>
      fetch(`${node.http}/v1/users/${bob.userid}/preferences`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await put(nodes.a, { dnduntil: Date.now() + 3600_000, devicealertkinds: { [bob.client.station]: ['message'] } })).status).toBe(
      200,
    );
    await waitFor(() => nodes.b.app.parts.preferences.silences(bob.userid, null, Date.now()) === 'dnd', 5000, 'node B to learn of it');
    expect(nodes.b.app.parts.preferences.alertsOn(bob.userid, bob.client.station, 'app.invoice')).toBe(false);

    expect((await put(nodes.b, { dnduntil: null, devicealertkinds: { [bob.client.station]: null } })).status).toBe(200);
    await waitFor(() => nodes.a.app.parts.preferences.silences(bob.userid, null, Date.now()) === undefined, 5000, 'node A to learn of it');
    expect(nodes.a.app.parts.preferences.alertsOn(bob.userid, bob.client.station, 'app.invoice')).toBe(true);
  });
});
