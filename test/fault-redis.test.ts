import { describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from './helpers/stores.ts';
import { waitFor } from './helpers/server.ts';
import { CHILD_ADMIN_TOKEN, type HeraldProcess } from './helpers/herald-process.ts';
import {
  feedsOf,
  killNodes,
  makeAudience,
  messagesIn,
  missingCount,
  sendMessages,
  startNode,
  tally,
  type Tally,
  usePrivateCluster,
} from './helpers/fault-cluster.ts';

const RECIPIENTS = 20;

/** A counter's value in Prometheus text (0 when absent). */
function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : 0;
}
const MESSAGES = 90;

const skip = !TEST_DATABASE_URL || !TEST_REDIS_URL;
if (skip) console.warn('HERALD_TEST_DATABASE_URL or HERALD_TEST_REDIS_URL is unset: the Redis fault tests are skipped');

function report(title: string, figures: Tally & { accepted: number; refused: number }): void {
  console.log(
    `${title}: ${figures.accepted} messages accepted (${figures.refused} refused) to ${RECIPIENTS} devices; ` +
      `expected ${figures.expected}, delivered ${figures.delivered}, lost ${figures.lost}, duplicated ${figures.duplicated}, ` +
      `out of order ${figures.outOfOrder}, unknown ${figures.unknown}`,
  );
}

// Two `herald serve` nodes on a private PostgreSQL and a private Redis, devices split between
// them; node starts and a Redis restart take seconds on a busy machine.
describe.skipIf(skip)('live delivery across nodes when Redis fails', { timeout: 90_000 }, () => {
  const cluster = usePrivateCluster();

  async function fanOut(env: Record<string, string>, during?: () => Promise<void>, inspect?: (nodes: HeraldProcess[]) => Promise<void>) {
    const nodes = [await startNode(env), await startNode(env)];
    try {
      const audience = await makeAudience(
        nodes.map((n) => n.http),
        RECIPIENTS,
      );
      await Promise.all(audience.devices.map((device, i) => device.connect(nodes[i % 2].ws)));
      const sent = await sendMessages(audience, MESSAGES, { during });
      expect(sent, 'messages accepted').toEqual({ accepted: MESSAGES, refused: 0 });
      const feeds = await feedsOf(nodes[0].ws, audience.devices, audience.readers);
      for (const feed of feeds.values()) expect(messagesIn(feed)).toBe(sent.accepted);
      // Every live device gets everything without reconnecting: from the bus, or from the feed.
      await waitFor(() => missingCount(feeds) === 0, 20_000, 'every device to get every notification of its feed').catch(() => {});
      const figures = { ...tally(feeds), ...sent };
      for (const device of audience.devices) expect(device.socket?.readyState).toBe(1);
      for (const device of audience.devices) device.close();
      await inspect?.(nodes);
      return figures;
    } finally {
      await killNodes();
    }
  }

  it('Redis restarted during fan-out: every live device gets every notification once, in order', async () => {
    const env = { HERALD_DATABASE_URL: cluster.postgres.url, HERALD_REDIS_URL: cluster.redis.url };
    const figures = await fanOut(env, async () => {
      await cluster.redis.stop();
      // Away for a while: messages keep being committed and published into nothing.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await cluster.redis.start();
    });
    report('Redis restarted', figures);
    expect(figures.accepted).toBe(MESSAGES);
    expect(figures.lost).toBe(0);
    expect(figures.duplicated).toBe(0);
    expect(figures.unknown).toBe(0);
    expect(figures.outOfOrder).toBe(0);
    expect(figures.delivered).toBe(figures.expected);
  });

  it('a third of bus messages dropped: every live device gets every notification once, in order', async () => {
    const env = {
      HERALD_DATABASE_URL: cluster.postgres.url,
      HERALD_REDIS_URL: cluster.redis.url,
      HERALD_TEST_BUS_DROP: '0.33',
    };
    const counted = { losses: 0, caughtUp: 0 };
    const figures = await fanOut(env, undefined, async (nodes) => {
      for (const node of nodes) {
        const text = await (await fetch(`${node.http}/metrics`, { headers: { authorization: `Bearer ${CHILD_ADMIN_TOKEN}` } })).text();
        counted.losses += metric(text, 'herald_bus_possible_losses_total');
        counted.caughtUp += metric(text, 'herald_live_catch_up_delivered_total');
      }
    });
    report('bus dropping 33 %', figures);
    expect(figures.accepted).toBe(MESSAGES);
    expect(figures.lost).toBe(0);
    expect(figures.duplicated).toBe(0);
    expect(figures.unknown).toBe(0);
    expect(figures.outOfOrder).toBe(0);
    expect(figures.delivered).toBe(figures.expected);
    // What the bus lost reached the devices from the feed, and the metrics say so.
    console.log(`bus dropping 33 %: ${counted.losses} possible losses noticed, ${counted.caughtUp} notifications caught up from the feed`);
    expect(counted.losses).toBeGreaterThan(0);
    expect(counted.caughtUp).toBeGreaterThan(0);
  });
});
