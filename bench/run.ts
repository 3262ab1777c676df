/**
 * `npm run bench`: runs the scenarios on loopback, prints one table and writes it to
 * BENCHMARKS.md (with the date, the core count, the commit and the exact command).
 * Never part of `npm test`. Every load generator, baseline and test double is a process
 * of its own; all are killed at the end and on error.
 *
 *   BENCH_QUICK=1          a small, fast smoke run
 *   BENCH_RUNS=n           measured runs per figure (median; default 3)
 *   BENCH_ONLY=a,b         some of: fanout, latency, latency-ceiling, connections, push (APNs, FCM, Web Push:
 *                          BENCH_PUSH_PROVIDERS=apns,fcm,webpush), cluster-fanout,
 *                          cluster-latency, cluster-connections
 *   BENCH_DATABASE_URL=postgres://…  the cluster scenarios' database; when set, the latency
 *                          scenario also runs on it, beside SQLite
 *   BENCH_CPU_PROF=1       also write a CPU profile of Herald's fan-out (bench/profiles/)
 *   BENCH_NO_WRITE=1       print only, leave BENCHMARKS.md alone (a QUICK run never writes it)
 * and the sizes in bench/lib/config.ts (BENCH_FANOUT_N, BENCH_FANOUT_M, BENCH_LATENCY_RATE …).
 * The cluster scenarios use PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL: see
 * bench/lib/cluster-env.ts) and say so when either cannot be reached.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { benchConfig } from './lib/config.ts';
import { killAllChildren, ROOT_DIR } from './lib/ipc.ts';
import { runFanout, type FanoutResult } from './fanout.ts';
import { runLatency, type LatencyResult } from './latency.ts';
import { runLatencyCeiling, type CeilingResult } from './latency-ceiling.ts';
import { runConnections, type ConnectionsResult } from './connections.ts';
import { runPush, type PushResult } from './push.ts';
import { renderReport, type Outcome, type Report } from './report.ts';
import { summarise } from './profile-summary.ts';
import { runClusterFanout, runClusterLatency, type ClusterFanoutResult, type ClusterLatencyResult } from './cluster.ts';
import { runClusterConnections, type ClusterConnectionsResult } from './cluster-connections.ts';
import { postgresMissing, redisMissing } from './lib/cluster-env.ts';
import { runFcmPush, runWebPush, type ProviderPushResult } from './push-providers.ts';

/** The whole run stops by itself after this long, whatever is still going. */
const WALL_CLOCK_LIMIT_MS = Number(process.env.BENCH_LIMIT_S ?? 1500) * 1000;

const started = Date.now();
const log = (line: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}\n`);

const watchdog = setTimeout(() => {
  log(`the bench exceeded ${WALL_CLOCK_LIMIT_MS / 1000} s; stopping every child`);
  killAllChildren();
  process.exit(2);
}, WALL_CLOCK_LIMIT_MS);
watchdog.unref();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}

function wanted(name: string): boolean {
  return benchConfig.only.length === 0 || benchConfig.only.includes(name);
}

async function attempt<T>(
  name: string,
  available: () => string | undefined | Promise<string | undefined>,
  run: () => Promise<T>,
): Promise<Outcome<T>> {
  if (!wanted(name)) return { state: 'skipped', reason: 'not selected (BENCH_ONLY)' };
  const missing = await available();
  if (missing) {
    log(`${name}: not available yet (${missing})`);
    return { state: 'unavailable', reason: missing };
  }
  const t0 = Date.now();
  try {
    const value = await run();
    log(`${name}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return { state: 'done', value, seconds: (Date.now() - t0) / 1000 };
  } catch (error) {
    log(`${name}: FAILED: ${(error as Error).stack ?? String(error)}`);
    killAllChildren();
    return { state: 'failed', reason: (error as Error).message.split('\n')[0] };
  }
}

const needFile = (file: string, what: string) => () =>
  fs.existsSync(path.join(ROOT_DIR, file)) ? undefined : `${what} (${file}) has not landed`;

/** PostgreSQL, and Redis when `redis`: the first reason either is missing. */
const needCluster = (redis: boolean) => async () => (await postgresMissing()) ?? (redis ? await redisMissing() : undefined);

function commitOf(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT_DIR }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT_DIR }).toString().trim() !== '';
    return dirty ? `${head} + uncommitted changes in src/` : head;
  } catch {
    return 'unknown';
  }
}

function commandLine(): string {
  const env = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_'))
    .map(([k, v]) => `${k}=${v}`)
    .sort();
  return [...env, 'npm run bench'].join(' ');
}

try {
  const loadBefore = os.loadavg()[0];
  log(
    `Herald bench on ${os.cpus().length} cores, load ${loadBefore.toFixed(2)}; ${benchConfig.quick ? 'QUICK smoke run' : 'full run'}, ${benchConfig.runs} runs per figure`,
  );
  const fanout = await attempt<FanoutResult>('fanout', needFile('src/channels/websocket.ts', 'the WebSocket channel'), () =>
    runFanout(log),
  );
  const latency = await attempt<LatencyResult>('latency', needFile('src/channels/websocket.ts', 'the WebSocket channel'), () =>
    runLatency(log),
  );
  const latencyPostgres = benchConfig.databaseUrl
    ? await attempt<LatencyResult>('latency', needFile('src/channels/websocket.ts', 'the WebSocket channel'), () =>
        runLatency(log, benchConfig.databaseUrl),
      )
    : undefined;
  const latencyCeiling = await attempt<CeilingResult>(
    'latency-ceiling',
    needFile('src/channels/websocket.ts', 'the WebSocket channel'),
    () => runLatencyCeiling(log),
  );
  const connections = await attempt<ConnectionsResult>('connections', needFile('src/channels/websocket.ts', 'the WebSocket channel'), () =>
    runConnections(log),
  );
  // BENCH_PUSH_PROVIDERS=apns,fcm,webpush picks the providers of the push scenario.
  const provider = (name: string) => () => (benchConfig.push.providers.includes(name) ? undefined : 'not in BENCH_PUSH_PROVIDERS');
  const push = await attempt<PushResult>('push', provider('apns'), () => runPush(log));
  const pushFcm = await attempt<ProviderPushResult>('push', provider('fcm'), () => runFcmPush(log));
  const pushWebPush = await attempt<ProviderPushResult>('push', provider('webpush'), () => runWebPush(log));
  const clusterFanout = await attempt<ClusterFanoutResult>('cluster-fanout', needCluster(true), () => runClusterFanout(log));
  const clusterLatency = await attempt<ClusterLatencyResult>('cluster-latency', needCluster(true), () => runClusterLatency(log));
  const clusterConnections = await attempt<ClusterConnectionsResult>('cluster-connections', needCluster(true), () =>
    runClusterConnections(log),
  );

  const report: Report = {
    date: new Date().toISOString(),
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    command: commandLine(),
    commit: commitOf(),
    quick: benchConfig.quick,
    runs: benchConfig.runs,
    seconds: (Date.now() - started) / 1000,
    load: [loadBefore, os.loadavg()[0]],
    fanout,
    latency,
    latencyPostgres,
    latencyCeiling,
    connections,
    push,
    pushFcm,
    pushWebPush,
    clusterFanout,
    clusterLatency,
    clusterConnections,
  };
  const { table, markdown, history } = renderReport(report);
  process.stdout.write(table + '\n');
  if (fanout.state === 'done' && fanout.value.profile) {
    process.stdout.write('\n' + summarise(fanout.value.profile, 25) + '\n');
  }
  if (process.env.BENCH_NO_WRITE !== '1' && !benchConfig.quick) {
    writeBenchmarks(markdown, history);
    log(`results written to BENCHMARKS.md`);
  }
  const failed = [
    fanout,
    latency,
    latencyPostgres,
    latencyCeiling,
    connections,
    push,
    pushFcm,
    pushWebPush,
    clusterFanout,
    clusterLatency,
    clusterConnections,
  ].some((o) => o?.state === 'failed');
  clearTimeout(watchdog);
  killAllChildren();
  process.exitCode = failed ? 1 : 0;
} catch (error) {
  log(`bench failed: ${(error as Error).stack ?? String(error)}`);
  killAllChildren();
  process.exitCode = 1;
}

/**
 * BENCHMARKS.md keeps its hand-written parts; the latest results replace what sits between
 * the results markers, and a one-line summary of every full run is added to the history.
 */
function writeBenchmarks(results: string, historyLine: string): void {
  const file = path.join(ROOT_DIR, 'BENCHMARKS.md');
  const START = '<!-- bench:results:start -->';
  const END = '<!-- bench:results:end -->';
  const HISTORY = '<!-- bench:history -->';
  let text = fs.existsSync(file)
    ? fs.readFileSync(file, 'utf8')
    : `# Herald benchmarks\n\n${START}\n${END}\n\n## History\n\nOne line per \`npm run bench\` (newest last).\n\n${HISTORY}\n`;
  if (!text.includes(START) || !text.includes(END)) text += `\n${START}\n${END}\n`;
  if (!text.includes(HISTORY)) text += `\n## History\n\n${HISTORY}\n`;
  text = text.slice(0, text.indexOf(START) + START.length) + '\n' + results + '\n' + text.slice(text.indexOf(END));
  text = text.replace(HISTORY, `${historyLine}\n${HISTORY}`);
  fs.writeFileSync(file, text);
}
