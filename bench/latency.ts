/**
 * Latency: D connected devices (paired into one-to-one conversations), messages at a
 * fixed rate through the Ozeki API; p50, p99 and max from the request leaving the sender
 * to the frame arriving at the recipient, one process clock (bench/clients/latency.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { benchConfig, loopbackSources } from './lib/config.ts';
import { HeraldProcess } from './lib/herald.ts';
import { BENCH_DIR, Child, sleep } from './lib/ipc.ts';
import { median } from './lib/stats.ts';

export interface LatencyRun {
  sent: number;
  framed: number;
  failures: number;
  lastError: string;
  achievedRate: number;
  p50: number;
  p99: number;
  max: number;
  answerP50: number;
  answerP99: number;
  frameBeforeAnswer: number;
  /** The longest event-loop delay of the load generator (the sender), ms. */
  clientLoopMax: number;
  /** The longest event-loop delay of the process that stamps the frames' arrivals, ms (none when the sender does). */
  receiverLoopMax?: number;
  /** Frames of the run that came to their recipient twice, or with an ID past the run's. */
  misdelivered?: number;
  /** The server's longest event-loop delay, its p99, and its longest garbage-collector pause, ms. */
  serverLoopMax?: number;
  serverLoopP99?: number;
  serverGcMax?: number;
  cpuPerMessage?: number;
  /** PostgreSQL: CPU time of the database's backends per message, µs (0 on SQLite, where it is the node's). */
  databaseCpuPerMessage?: number;
}

export interface LatencyResult {
  /** The database Herald ran on. */
  database: 'SQLite' | 'PostgreSQL';
  devices: number;
  rate: number;
  seconds: number;
  runs: LatencyRun[];
  p50: number;
  p99: number;
  max: number;
  answerP99: number;
  achievedRate: number;
  /** Server CPU time (user + system) per message, µs: less disturbed by a busy machine. */
  cpuPerMessage: number;
  /** PostgreSQL: its backends' CPU time per message, µs. */
  databaseCpuPerMessage: number;
}

const WARMUP_SECONDS = 3;

/** The latency scenario on SQLite, or on a fresh database of the PostgreSQL server at `databaseUrl`. */
export async function runLatency(log: (line: string) => void, databaseUrl?: string): Promise<LatencyResult> {
  const { devices, rate, seconds } = benchConfig.latency;
  const runs = benchConfig.runs;
  const database = databaseUrl ? 'PostgreSQL' : 'SQLite';
  log(`latency on ${database}: ${devices} devices, ${rate} messages/s for ${seconds} s, ${runs} runs`);
  const herald = await HeraldProcess.start({ databaseUrl, env: databaseUrl ? {} : { HERALD_DATABASE_URL: '' } });
  const generator = new Child('latency-generator', 'clients/latency.ts');
  try {
    const users = await herald.seed('latency', devices - (devices % 2));
    await generator.request(
      'setup',
      {
        baseUrl: herald.endpoints.http,
        ws: herald.endpoints.ws,
        devices: users.map((u) => ({ userid: u.userid, station: u.stations[0] })),
        localAddresses: loopbackSources(benchConfig.sourceAddresses),
      },
      180_000,
    );
    // Warm-up at the same rate, not counted. After 1 s of it the first measured run still cost
    // ~10 % more CPU per message than the next two (714/687/710/740 against 606–673 µs in four
    // sets of three runs) and had the worst p99 of its set every time: code still being optimised.
    await generator.request('run', { rate, seconds: WARMUP_SECONDS, label: 'warmup', graceMs: 2000 }, 60_000);
    let profile: string | undefined;
    if (benchConfig.cpuProfile) {
      const dir = path.join(BENCH_DIR, 'profiles');
      fs.mkdirSync(dir, { recursive: true });
      profile = path.join(dir, `latency-herald-${database.toLowerCase()}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
      // A profiled run is extra, apart from the measured ones.
      await herald.child.request('profileStart');
      await generator.request('run', { rate, seconds, label: 'profiled', graceMs: 5000 }, seconds * 1000 + 60_000);
      await herald.child.request('profileStop', { file: profile });
      log(`  CPU profile of Herald under the latency load: ${path.relative(process.cwd(), profile)}`);
    }
    const results: LatencyRun[] = [];
    for (let run = 0; run < runs; run++) {
      await sleep(300);
      await herald.child.request('statements');
      const cpuBefore = await herald.child.request<number>('cpu');
      const databaseCpuBefore = await herald.child.request<number>('databaseCpu');
      await herald.child.request('stallsStart');
      const result = await generator.request<LatencyRun>(
        'run',
        { rate, seconds, label: `run${run}`, graceMs: 5000 },
        seconds * 1000 + 60_000,
      );
      // No frame at all within the run: its percentiles are NaN, which JSON carried as null.
      for (const key of ['p50', 'p99', 'max', 'answerP50', 'answerP99'] as const) result[key] ??= NaN;
      const stalls = await herald.child.request<{
        loopMax: number;
        loopP99: number;
        gcMax: number;
        gcByKind: Record<string, number>;
        heapUsedMb: number;
        batches?: {
          count: number;
          unitsPerBatch: number;
          waited: { max: number; p99: number };
          work: { max: number; p99: number };
          publish: { max: number; p99: number };
          unit: { max: number; p99: number };
        };
        logHolds?: { count: number; totalMs: number; maxMs: number };
      }>('stallsStop');
      if (process.env.BENCH_STALLS === '1') log(`  stalls: ${JSON.stringify(stalls)}`);
      result.serverLoopMax = stalls.loopMax;
      result.serverLoopP99 = stalls.loopP99;
      result.serverGcMax = stalls.gcMax;
      if (result.misdelivered)
        throw new Error(`latency: ${result.misdelivered} frames came to their recipient twice, or had an unknown ID`);
      if (result.failures > 0) throw new Error(`latency: ${result.failures} sends failed: ${result.lastError}`);
      // The generator answers after its grace wait, so the server is idle again by now.
      result.cpuPerMessage = ((await herald.child.request<number>('cpu')) - cpuBefore) / result.sent;
      result.databaseCpuPerMessage = ((await herald.child.request<number>('databaseCpu')) - databaseCpuBefore) / result.sent;
      results.push(result);
      if (databaseUrl) {
        const counted = await herald.child.request<Array<[string, number]>>('statements');
        const total = counted.reduce((sum, [, n]) => sum + n, 0);
        log(`  statements per message: ${(total / result.sent).toFixed(2)}`);
        for (const [text, n] of counted.slice(0, 12)) log(`    ${(n / result.sent).toFixed(2)}  ${text}`);
      }
      log(
        `  run ${run + 1}: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, max ${result.max.toFixed(1)} ms ` +
          `(${result.framed}/${result.sent} framed, ${Math.round(result.achievedRate)}/s sent, answer p99 ${result.answerP99.toFixed(2)} ms, ` +
          `server CPU ${Math.round(result.cpuPerMessage)} µs/message` +
          (databaseUrl ? ` + PostgreSQL ${Math.round(result.databaseCpuPerMessage)} µs)` : ')') +
          `; longest stalls: server loop ${result.serverLoopMax.toFixed(1)} ms (p99 ${result.serverLoopP99.toFixed(1)}), ` +
          `server GC ${result.serverGcMax.toFixed(1)} ms, generator loop ${result.clientLoopMax.toFixed(1)} ms` +
          (result.receiverLoopMax === undefined ? '' : `, receiver loop ${result.receiverLoopMax.toFixed(1)} ms`),
      );
      const { batches, logHolds } = stalls;
      if (batches)
        log(
          `    transactions: ${batches.count}, ${batches.unitsPerBatch.toFixed(2)} messages each; BEGIN → COMMIT p99 ${batches.work.p99.toFixed(2)} ms, ` +
            `max ${batches.work.max.toFixed(1)} ms; oldest message's wait for its transaction p99 ${batches.waited.p99.toFixed(2)} ms, ` +
            `max ${batches.waited.max.toFixed(1)} ms; publishing p99 ${batches.publish.p99.toFixed(2)} ms; ` +
            `message handed to the notifier → published p99 ${batches.unit.p99.toFixed(2)} ms, max ${batches.unit.max.toFixed(1)} ms` +
            (logHolds ? `; writers held for the log ${logHolds.count}× (${logHolds.totalMs.toFixed(1)} ms in all)` : ''),
        );
    }
    return {
      database,
      devices,
      rate,
      seconds,
      runs: results,
      p50: median(results.map((r) => r.p50)),
      p99: median(results.map((r) => r.p99)),
      max: median(results.map((r) => r.max)),
      answerP99: median(results.map((r) => r.answerP99)),
      achievedRate: median(results.map((r) => r.achievedRate)),
      cpuPerMessage: median(results.map((r) => r.cpuPerMessage ?? NaN)),
      databaseCpuPerMessage: median(results.map((r) => r.databaseCpuPerMessage ?? 0)),
    };
  } finally {
    await Promise.allSettled([generator.stop(), herald.stop()]);
  }
}
