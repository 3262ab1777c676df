import { describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from './helpers/stores.ts';
import { waitFor } from './helpers/server.ts';
import {
  feedsOf,
  makeAudience,
  messagesIn,
  missingCount,
  sendMessages,
  startNode,
  tally,
  usePrivateCluster,
} from './helpers/fault-cluster.ts';

const RECIPIENTS = 20;
const MESSAGES = 90;

const skip = !TEST_DATABASE_URL || !TEST_REDIS_URL;
if (skip) console.warn('HERALD_TEST_DATABASE_URL or HERALD_TEST_REDIS_URL is unset: the node-kill fault test is skipped');

describe.skipIf(skip)('a node killed during fan-out', { timeout: 90_000 }, () => {
  const cluster = usePrivateCluster();

  it('its devices reconnect to the other node with since: nothing missed, nothing twice', async () => {
    const env = { HERALD_DATABASE_URL: cluster.postgres.url, HERALD_REDIS_URL: cluster.redis.url };
    const [doomed, survivor] = [await startNode(env), await startNode(env)];
    // Everything is sent through the survivor: a request in flight to the killed node is not accepted.
    const audience = await makeAudience([survivor.http], RECIPIENTS);
    await Promise.all(audience.devices.map((device, i) => device.connect(i % 2 === 0 ? doomed.ws : survivor.ws)));
    const moved = audience.devices.filter((_, i) => i % 2 === 0);
    let reconnected: Promise<void> | undefined;
    const sent = await sendMessages(audience, MESSAGES, {
      during: async () => {
        doomed.process.kill('SIGKILL');
        await doomed.exited;
        // Each device of the killed node notices its socket closed and resumes on the survivor.
        reconnected = Promise.all(
          moved.map(async (device) => {
            await device.closed;
            await device.connect(survivor.ws);
          }),
        ).then(() => undefined);
      },
    });
    await reconnected;
    expect(sent).toEqual({ accepted: MESSAGES, refused: 0 });
    const feeds = await feedsOf(survivor.ws, audience.devices, audience.readers);
    for (const feed of feeds.values()) expect(messagesIn(feed)).toBe(MESSAGES);
    await waitFor(() => missingCount(feeds) === 0, 20_000, 'every device to get every notification of its feed').catch(() => {});
    const figures = tally(feeds);
    console.log(
      `node killed: ${sent.accepted} messages accepted to ${RECIPIENTS} devices (${moved.length} moved); expected ${figures.expected}, ` +
        `delivered ${figures.delivered}, lost ${figures.lost}, duplicated ${figures.duplicated}, out of order ${figures.outOfOrder}`,
    );
    for (const device of audience.devices) device.close();
    expect(figures.lost).toBe(0);
    expect(figures.duplicated).toBe(0);
    expect(figures.unknown).toBe(0);
    expect(figures.outOfOrder).toBe(0);
    expect(figures.delivered).toBe(figures.expected);
  });
});
