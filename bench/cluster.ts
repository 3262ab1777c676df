/**
 * Cluster scenarios: fan-out and latency on PostgreSQL with one node and with two nodes
 * (Redis bus) whose devices are split between them, beside one node on SQLite in the same
 * run; and the cross-node delivery latency (request to node A → frame from node B) beside
 * the same-node latency in the same two-node cluster. Every node is a process of its own.
 */
import { benchConfig, loopbackSources } from './lib/config.ts';
import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import { BENCH_DATABASE_URL, benchRedisUrl, freshSchema } from './lib/cluster-env.ts';
import { backendsCpuByPid, cpuBetween } from './lib/pg-cpu.ts';
import { Fleet, waitForCount } from './lib/fleet.ts';
import { HeraldProcess, type SeededUser } from './lib/herald.ts';
import { Child, sleep } from './lib/ipc.ts';
import { median } from './lib/stats.ts';
import { burst, warmUp, type Prepared } from './fanout.ts';
import type { LatencyRun } from './latency.ts';

export const SETUPS = ['sqlite', 'pg1', 'pg2'] as const;
export type Setup = (typeof SETUPS)[number];
/**
 * BENCH_CLUSTER_SETUPS=sqlite,pg1 runs only those set-ups (all by default): a change to one
 * store can then be measured beside SQLite alone, in less time.
 */
const CHOSEN_SETUPS: readonly Setup[] = (() => {
  const chosen = process.env.BENCH_CLUSTER_SETUPS;
  if (!chosen) return SETUPS;
  const names = chosen.split(',').filter(Boolean);
  for (const name of names)
    if (!(SETUPS as readonly string[]).includes(name)) throw new Error(`BENCH_CLUSTER_SETUPS: no set-up ${name} (${SETUPS.join(', ')})`);
  return SETUPS.filter((s) => names.includes(s));
})();
export const SETUP_LABEL: Record<Setup, string> = {
  sqlite: 'SQLite, 1 node',
  pg1: 'PostgreSQL, 1 node',
  pg2: 'PostgreSQL + Redis, 2 nodes',
};

/** One store and its nodes: SQLite alone, or nodes sharing a fresh PostgreSQL schema (and Redis when more than one). */
class Cluster {
  private constructor(
    readonly setup: Setup,
    readonly nodes: HeraldProcess[],
    private readonly dropSchema?: () => Promise<void>,
    /** PostgreSQL: the schema, also the application_name of the nodes' connections. */
    readonly schema?: string,
  ) {}

  static async start(setup: Setup): Promise<Cluster> {
    if (setup === 'sqlite') return new Cluster(setup, [await HeraldProcess.start()]);
    const schema = await freshSchema();
    const count = setup === 'pg2' ? 2 : 1;
    const env: Record<string, string> = {
      HERALD_DATABASE_URL: schema.url,
      ...(count > 1 ? { HERALD_REDIS_URL: await benchRedisUrl() } : {}),
    };
    const nodes: HeraldProcess[] = [];
    try {
      // One after the other: the first migrates the schema, the next finds it ready.
      for (let i = 0; i < count; i++) nodes.push(await HeraldProcess.start({ env }));
    } catch (error) {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await schema.drop();
      throw error;
    }
    return new Cluster(setup, nodes, schema.drop, schema.schema);
  }

  /** Live connections registered on all nodes together. */
  async live(): Promise<number> {
    const counts = await Promise.all(this.nodes.map((n) => n.liveConnections()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** CPU time of all nodes together (user + system), µs. */
  async cpu(): Promise<number> {
    const values = await Promise.all(this.nodes.map((n) => n.child.request<number>('cpu')));
    return values.reduce((a, b) => a + b, 0);
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.stop()));
    await this.dropSchema?.();
  }
}

// ---------------------------------------------------------------------------------------------
// Fan-out

export interface ClusterFanoutSide {
  nodes: number;
  rates: number[];
  median: number;
  cpuPerDelivery: number[];
  cpuMedian: number;
  /**
   * PostgreSQL: the CPU time of the nodes' backends per delivery (their application_name is
   * the schema), from /proc: the server runs on this machine.
   */
  dbCpuPerDelivery?: number[];
}

export interface ClusterFanoutResult {
  devices: number;
  messages: number;
  sides: Record<Setup, ClusterFanoutSide>;
}

/** N devices in one group, dealt round-robin to the nodes; the sender posts to the first node. */
async function prepareFanout(cluster: Cluster, devices: number, sources: string[]): Promise<Prepared> {
  const [first] = cluster.nodes;
  const users = await first.seed(`cfan${cluster.setup}`, devices + 1);
  const [senderUser, ...recipients] = users;
  const sender = new Child(`cluster-fanout-sender-${cluster.setup}`, 'clients/sender.ts');
  const fleet = new Fleet(benchConfig.clientProcesses, `cluster-fanout-${cluster.setup}`);
  try {
    await fleet.connect(
      'ws',
      recipients.map((u, i) => `${cluster.nodes[i % cluster.nodes.length].endpoints.ws}?station=${u.stations[0]}`),
      sources,
    );
    await waitForCount(() => cluster.live(), devices, 60_000, `${cluster.setup} WebSocket registrations`);
    const created = await sender.request<{ conversation: { id: string } }>('ozeki', {
      baseUrl: first.endpoints.http,
      station: senderUser.stations[0],
      api: 'chatconversation',
      body: { action: 'create', participantids: recipients.map((u) => u.userid), displayname: 'Bench cluster group' },
    });
    await sleep(500); // the conversation-list frames of the create go by first
    return {
      target: { kind: 'ozeki', baseUrl: first.endpoints.http, station: senderUser.stations[0], conversationId: created.conversation.id },
      fleet,
      sender,
      live: () => cluster.live(),
      cpu: () => cluster.cpu(),
      async stop() {
        await Promise.allSettled([fleet.stop(), sender.stop()]);
      },
    };
  } catch (error) {
    await Promise.allSettled([fleet.stop(), sender.stop()]);
    throw error;
  }
}

export async function runClusterFanout(log: (line: string) => void): Promise<ClusterFanoutResult> {
  const { fanoutDevices: devices, fanoutMessages: messages, runs } = benchConfig.cluster;
  const sources = loopbackSources(benchConfig.sourceAddresses);
  log(
    `cluster fan-out: ${devices} devices × ${messages} messages on ${CHOSEN_SETUPS.map((s) => SETUP_LABEL[s]).join(' / ')}, ${runs} runs, interleaved`,
  );
  const clusters: Partial<Record<Setup, Cluster>> = {};
  const prepared: Partial<Record<Setup, Prepared>> = {};
  const benchDb = new Kysely<any>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: BENCH_DATABASE_URL, max: 1 }) }),
  });
  try {
    for (const setup of CHOSEN_SETUPS) {
      const t0 = Date.now();
      clusters[setup] = await Cluster.start(setup);
      prepared[setup] = await prepareFanout(clusters[setup], devices, sources);
      await warmUp(prepared[setup], messages, SETUP_LABEL[setup]);
      log(`  ${SETUP_LABEL[setup]}: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    const rates = { sqlite: [] as number[], pg1: [] as number[], pg2: [] as number[] };
    const cpu = { sqlite: [] as number[], pg1: [] as number[], pg2: [] as number[] };
    const dbCpu = { sqlite: [] as number[], pg1: [] as number[], pg2: [] as number[] };
    for (let run = 0; run < runs; run++) {
      for (const setup of CHOSEN_SETUPS) {
        const schema = clusters[setup]!.schema;
        const db0 = schema ? await backendsCpuByPid(benchDb, schema) : undefined;
        const result = await burst(prepared[setup]!, messages, SETUP_LABEL[setup]);
        rates[setup].push(result.rate);
        cpu[setup].push(result.cpuPerDelivery);
        if (schema) dbCpu[setup].push(cpuBetween(db0!, await backendsCpuByPid(benchDb, schema)) / result.deliveries);
      }
      const db = (s: Setup) => (s === 'sqlite' ? '' : `, db ${dbCpu[s][run].toFixed(1)} µs`);
      log(
        `  run ${run + 1}: ${CHOSEN_SETUPS.map((s) => `${SETUP_LABEL[s]} ${Math.round(rates[s][run])}/s (${cpu[s][run].toFixed(1)} µs CPU${db(s)})`).join(', ')}`,
      );
    }
    const side = (setup: Setup): ClusterFanoutSide => ({
      nodes: clusters[setup]?.nodes.length ?? 0,
      rates: rates[setup],
      median: median(rates[setup]),
      cpuPerDelivery: cpu[setup],
      cpuMedian: median(cpu[setup]),
      ...(setup !== 'sqlite' && { dbCpuPerDelivery: dbCpu[setup] }),
    });
    return { devices, messages, sides: { sqlite: side('sqlite'), pg1: side('pg1'), pg2: side('pg2') } };
  } finally {
    await Promise.allSettled(Object.values(prepared).map((p) => p.stop()));
    await Promise.allSettled(Object.values(clusters).map((c) => c.stop()));
    await benchDb.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Latency

/** sqlite / pg1: one node; pg2-cross: every pair split over the two nodes; pg2-same: each pair on one node. */
export const LATENCY_SIDES = ['sqlite', 'pg1', 'pg2-cross', 'pg2-same'] as const;
export type LatencySide = (typeof LATENCY_SIDES)[number];
export const LATENCY_LABEL: Record<LatencySide, string> = {
  sqlite: 'SQLite, 1 node',
  pg1: 'PostgreSQL, 1 node',
  'pg2-cross': 'PostgreSQL + Redis, 2 nodes, node A → node B',
  'pg2-same': 'PostgreSQL + Redis, 2 nodes, same node',
};

export interface ClusterLatencySide {
  runs: LatencyRun[];
  p50: number;
  p99: number;
  max: number;
  /** Frames received of messages sent, summed over the runs. */
  framed: number;
  sent: number;
  cpuPerMessage: number;
}

export interface ClusterLatencyResult {
  devices: number;
  rate: number;
  seconds: number;
  sides: Record<LatencySide, ClusterLatencySide>;
}

const LATENCY_WARMUP_SECONDS = 3;
/** Before a run, every node must have been this quiet (CPU share over QUIET_WINDOW_MS), or QUIET_LIMIT_MS have passed. */
const QUIET_SHARE = 0.1;
const QUIET_WINDOW_MS = 500;
const QUIET_LIMIT_MS = 10_000;

/**
 * Waits until no node of any cluster is still working off an earlier run: a set-up that
 * fell behind (PostgreSQL at 1,000 messages/s today) would otherwise go on committing its
 * backlog through the next set-up's run. Returns how long it waited.
 */
async function waitQuiet(clusters: Cluster[]): Promise<number> {
  const started = Date.now();
  for (;;) {
    const before = await Promise.all(clusters.map((c) => c.cpu()));
    const t0 = Date.now();
    await sleep(QUIET_WINDOW_MS);
    const after = await Promise.all(clusters.map((c) => c.cpu()));
    const share = Math.max(...after.map((cpu, i) => (cpu - before[i]) / 1000 / (Date.now() - t0)));
    if (share < QUIET_SHARE || Date.now() - started > QUIET_LIMIT_MS) return Date.now() - started;
  }
}

/** Over the IPC channel a NaN (no frame at all) arrives as null. */
function restoreNaN(run: LatencyRun): LatencyRun {
  for (const key of ['p50', 'p99', 'max', 'answerP50', 'answerP99'] as const) run[key] = run[key] ?? NaN;
  return run;
}

interface LatencyLoad {
  side: LatencySide;
  cluster: Cluster;
  generator: Child;
}

/** Connects one generator's devices; `nodeOf(i)` picks the node device i connects to and sends through. */
async function prepareLatency(
  side: LatencySide,
  cluster: Cluster,
  users: SeededUser[],
  nodeOf: (i: number) => number,
): Promise<LatencyLoad> {
  const generator = new Child(`cluster-latency-${side}`, 'clients/latency.ts');
  try {
    await generator.request(
      'setup',
      {
        baseUrl: cluster.nodes[0].endpoints.http,
        ws: cluster.nodes[0].endpoints.ws,
        devices: users.map((u, i) => {
          const node = cluster.nodes[nodeOf(i)];
          return { userid: u.userid, station: u.stations[0], http: node.endpoints.http, ws: node.endpoints.ws };
        }),
        localAddresses: loopbackSources(benchConfig.sourceAddresses),
      },
      180_000,
    );
    return { side, cluster, generator };
  } catch (error) {
    await generator.stop();
    throw error;
  }
}

export async function runClusterLatency(log: (line: string) => void): Promise<ClusterLatencyResult> {
  const { latencyRate: rate, latencySeconds: seconds, runs } = benchConfig.cluster;
  const devices = benchConfig.cluster.latencyDevices - (benchConfig.cluster.latencyDevices % 2);
  log(`cluster latency: ${devices} devices, ${rate} messages/s for ${seconds} s, ${runs} runs, on ${LATENCY_SIDES.length} set-ups in turn`);
  const clusters: Cluster[] = [];
  const loads: LatencyLoad[] = [];
  try {
    for (const setup of CHOSEN_SETUPS) {
      const t0 = Date.now();
      const cluster = await Cluster.start(setup);
      clusters.push(cluster);
      if (setup === 'pg2') {
        // Two sets of devices in the same cluster, so that cross-node and same-node share every condition.
        const users = await cluster.nodes[0].seed('clatpg2', devices * 2);
        loads.push(await prepareLatency('pg2-cross', cluster, users.slice(0, devices), (i) => i % 2));
        loads.push(await prepareLatency('pg2-same', cluster, users.slice(devices), (i) => (i >> 1) % 2));
      } else {
        const users = await cluster.nodes[0].seed(`clat${setup}`, devices);
        loads.push(await prepareLatency(setup, cluster, users, () => 0));
      }
      log(`  ${SETUP_LABEL[setup]}: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    // One set-up after the other, each with its warm-up and its runs: at 1,000 messages/s
    // PostgreSQL falls behind and works off its backlog for tens of seconds afterwards, which
    // spoilt the next set-up's runs when they alternated (SQLite p50 131–1,088 ms instead of ~1 ms).
    const results: Record<LatencySide, LatencyRun[]> = { sqlite: [], pg1: [], 'pg2-cross': [], 'pg2-same': [] };
    for (const load of loads) {
      await waitQuiet(clusters);
      await load.generator.request('run', { rate, seconds: LATENCY_WARMUP_SECONDS, label: 'warmup', graceMs: 2000 }, 60_000);
      for (let run = 0; run < runs; run++) {
        const waited = await waitQuiet(clusters);
        if (waited > 2000) log(`  waited ${(waited / 1000).toFixed(1)} s for the nodes to finish earlier runs`);
        const cpuBefore = await load.cluster.cpu();
        const result = restoreNaN(
          await load.generator.request<LatencyRun>('run', { rate, seconds, label: `run${run}`, graceMs: 5000 }, seconds * 1000 + 60_000),
        );
        result.cpuPerMessage = ((await load.cluster.cpu()) - cpuBefore) / result.sent;
        results[load.side].push(result);
        log(
          `  run ${run + 1}, ${LATENCY_LABEL[load.side]}: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, max ${result.max.toFixed(1)} ms` +
            ` (${result.framed}/${result.sent} framed, ${result.failures} failed, ${Math.round(result.achievedRate)}/s sent, CPU ${Math.round(result.cpuPerMessage)} µs/message)`,
        );
      }
    }
    const side = (name: LatencySide): ClusterLatencySide => {
      const list = results[name];
      return {
        runs: list,
        p50: median(list.map((r) => r.p50)),
        p99: median(list.map((r) => r.p99)),
        max: median(list.map((r) => r.max)),
        framed: list.reduce((sum, r) => sum + r.framed, 0),
        sent: list.reduce((sum, r) => sum + r.sent, 0),
        cpuPerMessage: median(list.map((r) => r.cpuPerMessage ?? NaN)),
      };
    };
    return {
      devices,
      rate,
      seconds,
      sides: { sqlite: side('sqlite'), pg1: side('pg1'), 'pg2-cross': side('pg2-cross'), 'pg2-same': side('pg2-same') },
    };
  } finally {
    await Promise.allSettled(loads.map((l) => l.generator.stop()));
    await Promise.allSettled(clusters.map((c) => c.stop()));
  }
}
