/**
 * Idle connections across a cluster: 4 Herald nodes (PostgreSQL + Redis, processes of their
 * own) hold up to 60,000 idle WebSockets between them, dealt round-robin; RSS per connection
 * = the growth of all nodes' RSS (each after a full GC) / connections. Every process stays
 * under its descriptor limit: a node holds total/4, a client process at most
 * PER_CLIENT_PROCESS, and the clients spread over enough loopback source addresses that no
 * address runs out of ports. Beside it, in the same run, a bare `ws` server holding one
 * node's share measured the same way.
 */
import fs from 'node:fs';
import { benchConfig, loopbackSources } from './lib/config.ts';
import { benchRedisUrl, freshSchema } from './lib/cluster-env.ts';
import { Fleet, waitForCount } from './lib/fleet.ts';
import { HeraldProcess } from './lib/herald.ts';
import { Child, sleep } from './lib/ipc.ts';

export interface ClusterConnectionsResult {
  nodes: number;
  steps: number[];
  /** Bytes per connection at each step, all nodes together. */
  herald: number[];
  /** The most connections one node held at the last step, and the descriptor limit it ran under. */
  perNodePeak: number;
  descriptorLimit: number;
  /** Seconds to open each step's new connections. */
  connectSeconds: number[];
  /** The bare ws server holding one node's share (last step / nodes). */
  wsConnections: number;
  ws: number;
}

/** Connections per client process: under the 20,000 descriptors a process may hold here. */
const PER_CLIENT_PROCESS = 12_000;
/** Connections one loopback source address opens at most (its ephemeral ports are shared by every destination). */
const PER_SOURCE_ADDRESS = 5_000;

/** The soft descriptor limit of processes started from here (the children inherit it). */
function descriptorLimit(): number {
  try {
    const line = fs
      .readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    return Number(line?.split(/\s+/)[3]) || NaN;
  } catch {
    return NaN;
  }
}

interface Measured {
  perConnection: number[];
  connectSeconds: number[];
}

async function measure(
  steps: number[],
  urls: string[],
  rss: () => Promise<number>,
  live: () => Promise<number>,
  label: string,
): Promise<Measured> {
  const max = steps[steps.length - 1];
  const sources = loopbackSources(Math.max(benchConfig.sourceAddresses, Math.ceil(max / PER_SOURCE_ADDRESS)));
  const fleets: Fleet[] = [];
  const perConnection: number[] = [];
  const connectSeconds: number[] = [];
  try {
    await sleep(300);
    const empty = await rss();
    let open = 0;
    for (const step of steps) {
      const fleet = new Fleet(Math.max(1, Math.ceil((step - open) / PER_CLIENT_PROCESS)), `${label}-${step}`);
      fleets.push(fleet);
      const started = Date.now();
      await fleet.connect('ws', urls.slice(open, step), sources, 300_000);
      open = step;
      await waitForCount(live, step, 120_000, `${label} registrations`);
      connectSeconds.push((Date.now() - started) / 1000);
      await sleep(500);
      perConnection.push(((await rss()) - empty) / step);
    }
    return { perConnection, connectSeconds };
  } finally {
    await Promise.allSettled(fleets.map((f) => f.stop()));
  }
}

export async function runClusterConnections(log: (line: string) => void): Promise<ClusterConnectionsResult> {
  const { connectionNodes: count, connectionSteps: steps } = benchConfig.cluster;
  const max = steps[steps.length - 1];
  const limit = descriptorLimit();
  const perNode = Math.ceil(max / count);
  // A node holds its share plus a few hundred descriptors of its own (database pool, Redis, files).
  if (perNode + 500 > limit)
    throw new Error(`${perNode} connections per node would not fit under the descriptor limit ${limit}: add nodes`);
  log(`cluster connections: ${steps.join(', ')} idle WebSockets over ${count} nodes (PostgreSQL + Redis), descriptor limit ${limit}`);

  const schema = await freshSchema();
  const env = { HERALD_DATABASE_URL: schema.url, HERALD_REDIS_URL: await benchRedisUrl() };
  const nodes: HeraldProcess[] = [];
  let bare: Child | undefined;
  try {
    // Seed before the measured nodes start, so that seeding leaves nothing in them.
    const seeder = await HeraldProcess.start({ env });
    const seedStarted = Date.now();
    let stations: string[];
    try {
      stations = (await seeder.seed('cidle', max)).map((u) => u.stations[0]);
    } finally {
      await seeder.stop();
    }
    log(`  seeded ${max} users and stations in ${((Date.now() - seedStarted) / 1000).toFixed(1)} s`);
    for (let i = 0; i < count; i++) nodes.push(await HeraldProcess.start({ env }));
    const urls = stations.map((s, i) => `${nodes[i % count].endpoints.ws}?station=${s}`);
    const sum = async (f: (n: HeraldProcess) => Promise<number>) => (await Promise.all(nodes.map(f))).reduce((a, b) => a + b, 0);
    const herald = await measure(
      steps,
      urls,
      () => sum((n) => n.rss()),
      () => sum((n) => n.liveConnections()),
      'cluster',
    );
    log(
      `  Herald, ${count} nodes: ${steps.map((s, i) => `${s} in ${herald.connectSeconds[i].toFixed(1)} s, ${(herald.perConnection[i] / 1024).toFixed(1)} KB/conn`).join('; ')}`,
    );
    await Promise.allSettled(nodes.splice(0).map((n) => n.stop()));

    bare = new Child('ws-cluster-baseline', 'baselines/ws-server.ts');
    const endpoints = await bare.request<{ ws: string }>('listen');
    const ws = await measure(
      [perNode],
      Array(perNode).fill(endpoints.ws),
      () => bare!.request<number>('rss'),
      () => bare!.request<number>('connections'),
      'ws-share',
    );
    log(
      `  bare ws, one node's share: ${perNode} in ${ws.connectSeconds[0].toFixed(1)} s, ${(ws.perConnection[0] / 1024).toFixed(1)} KB/conn`,
    );
    return {
      nodes: count,
      steps,
      herald: herald.perConnection,
      perNodePeak: perNode,
      descriptorLimit: limit,
      connectSeconds: herald.connectSeconds,
      wsConnections: perNode,
      ws: ws.perConnection[0],
    };
  } finally {
    await bare?.stop();
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await schema.drop();
  }
}
