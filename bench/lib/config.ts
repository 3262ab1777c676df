/**
 * Bench sizes, scaled by environment variables. BENCH_QUICK=1 shrinks everything for a
 * smoke run while developing; the defaults are those of the issue and fit the whole
 * `npm run bench` into well under ten minutes on 2 cores.
 */
function int(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number, got "${raw}"`);
  return value;
}

const quick = process.env.BENCH_QUICK === '1';

export const benchConfig = {
  quick,
  /** Measured runs per figure; each figure is their median. */
  runs: int('BENCH_RUNS', quick ? 1 : 3),
  /** Receiving client processes (connections are split between them). */
  clientProcesses: int('BENCH_CLIENT_PROCS', 2),
  /** Loopback source addresses the clients spread over: 127.0.0.2, 127.0.0.3 … */
  sourceAddresses: int('BENCH_SOURCE_ADDRESSES', 4),
  /** Which scenarios to run (comma-separated); all by default. */
  only: (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean),
  /**
   * A PostgreSQL server (postgres://…): fan-out and latency also run Herald on it, beside
   * SQLite in the same run, each node in a fresh database of its own on that server.
   */
  databaseUrl: process.env.BENCH_DATABASE_URL || undefined,
  /** Write the server's CPU profile of the fan-out (bench/profiles/). */
  cpuProfile: process.env.BENCH_CPU_PROF === '1',
  fanout: {
    devices: int('BENCH_FANOUT_N', quick ? 300 : 2000),
    messages: int('BENCH_FANOUT_M', quick ? 10 : 50),
    /** Add requests in flight at once. */
    concurrency: int('BENCH_FANOUT_CONCURRENCY', 4),
  },
  latency: {
    devices: int('BENCH_LATENCY_DEVICES', quick ? 200 : 1000),
    rate: int('BENCH_LATENCY_RATE', quick ? 200 : 1000),
    seconds: int('BENCH_LATENCY_SECONDS', quick ? 2 : 5),
  },
  /** The latency ceiling's rates, messages/s, tried in turn until one misses p99 < 50 ms. */
  ceilingRates: (process.env.BENCH_CEILING_RATES ?? (quick ? '200,400' : '1000,1500,2000,2500,3000,4000')).split(',').map(Number),
  connections: {
    steps: (process.env.BENCH_CONNECTIONS ?? (quick ? '500,1500' : '5000,15000')).split(',').map(Number),
  },
  /** The cluster scenarios (bench/cluster.ts, bench/cluster-connections.ts): PostgreSQL, Redis, several nodes. */
  cluster: {
    runs: int('BENCH_CLUSTER_RUNS', quick ? 1 : 3),
    fanoutDevices: int('BENCH_CLUSTER_FANOUT_N', quick ? 300 : 2000),
    fanoutMessages: int('BENCH_CLUSTER_FANOUT_M', quick ? 10 : 30),
    latencyDevices: int('BENCH_CLUSTER_LATENCY_DEVICES', quick ? 200 : 1000),
    latencyRate: int('BENCH_CLUSTER_LATENCY_RATE', quick ? 200 : 1000),
    latencySeconds: int('BENCH_CLUSTER_LATENCY_SECONDS', quick ? 2 : 5),
    /** Nodes of the idle-connections cluster, and the totals measured across them. */
    connectionNodes: int('BENCH_CLUSTER_NODES', 4),
    connectionSteps: (process.env.BENCH_CLUSTER_CONNECTIONS ?? (quick ? '2000,4000' : '20000,60000')).split(',').map(Number),
  },
  push: {
    pushes: int('BENCH_PUSHES', quick ? 2000 : 20000),
    /** Streams in flight at once for the bare client (and the concurrency Herald is told). */
    streams: int('BENCH_PUSH_STREAMS', 500),
    /** Pushes per run to the FCM and Web Push doubles. */
    fcmPushes: int('BENCH_FCM_PUSHES', quick ? 1000 : 10000),
    webPushes: int('BENCH_WEBPUSH_PUSHES', quick ? 400 : 2000),
    /** Which providers the push scenario measures. */
    providers: (process.env.BENCH_PUSH_PROVIDERS ?? 'apns,fcm,webpush').split(',').filter(Boolean),
  },
};

export type BenchConfig = typeof benchConfig;

// A random start, so that a bench run right after another does not meet its TIME_WAIT ports.
let sourcesHandedOut = Math.floor(Math.random() * 200);

/**
 * Loopback source addresses for one batch of clients: 127.0.0.2, 127.0.0.3 … Each call
 * hands out fresh ones (up to 127.0.0.254, then round again), so the ports a closed batch
 * leaves in TIME_WAIT never slow down the next batch's connects.
 */
export function loopbackSources(count: number): string[] {
  const n = Math.max(1, Math.min(count, 200));
  if (sourcesHandedOut + n > 253) sourcesHandedOut = 0;
  const first = sourcesHandedOut + 2;
  sourcesHandedOut += n;
  return Array.from({ length: n }, (_, i) => `127.0.0.${first + i}`);
}
