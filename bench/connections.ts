/**
 * Connections: server memory (RSS, after a full GC) per idle WebSocket connection at each
 * step (default 5,000 and 15,000), for Herald and for a bare ws server measured the same
 * way. Clients spread over several processes and loopback source addresses.
 * Per connection = (RSS with n connections − RSS with none) / n, in a fresh server process
 * per run.
 */
import fs from 'node:fs';
import { benchConfig, loopbackSources } from './lib/config.ts';
import { Fleet, waitForCount } from './lib/fleet.ts';
import { HeraldProcess } from './lib/herald.ts';
import { Child, sleep } from './lib/ipc.ts';
import { median } from './lib/stats.ts';

export interface ConnectionsResult {
  steps: number[];
  /** Bytes per connection at each step, median of the runs. */
  herald: number[];
  ws: number[];
  heraldRuns: number[][];
  wsRuns: number[][];
}

/** Connections per client process: far below the per-process file limit. */
const PER_CLIENT_PROCESS = 4000;

async function measureSteps(
  steps: number[],
  urls: string[],
  rss: () => Promise<number>,
  live: () => Promise<number>,
  label: string,
): Promise<number[]> {
  const max = steps[steps.length - 1];
  const sources = loopbackSources(Math.max(benchConfig.sourceAddresses, Math.ceil(max / 5000)));
  const fleets: Fleet[] = [];
  const perConnection: number[] = [];
  try {
    await sleep(300);
    const empty = await rss();
    let open = 0;
    for (const step of steps) {
      // Each step adds a fleet for the new connections, so the earlier ones stay open.
      const fleet = new Fleet(Math.max(1, Math.ceil((step - open) / PER_CLIENT_PROCESS)), `${label}-${step}`);
      fleets.push(fleet);
      const started = Date.now();
      await fleet.connect('ws', urls.slice(open, step), sources);
      open = step;
      await waitForCount(live, step, 120_000, `${label} registrations`);
      if (process.env.BENCH_VERBOSE === '1') {
        process.stderr.write(`    ${label}: ${step} connections after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      }
      await sleep(500);
      perConnection.push(((await rss()) - empty) / step);
    }
    return perConnection;
  } finally {
    await Promise.allSettled(fleets.map((f) => f.stop()));
  }
}

export async function runConnections(log: (line: string) => void): Promise<ConnectionsResult> {
  const steps = benchConfig.connections.steps;
  const runs = benchConfig.runs;
  const max = steps[steps.length - 1];
  log(`connections: ${steps.join(', ')} idle WebSocket connections, ${runs} runs`);

  // Seed once; every run starts a fresh Herald process on the same data directory, so the
  // seeding itself leaves nothing in the measured process.
  const seeder = await HeraldProcess.start();
  const dataDir = seeder.dataDir;
  let stations: string[];
  const seedStarted = Date.now();
  try {
    stations = (await seeder.seed('idle', max)).map((u) => u.stations[0]);
    log(`  seeded ${max} users and stations in ${((Date.now() - seedStarted) / 1000).toFixed(1)} s`);
  } finally {
    await seeder.stop(false);
  }

  const heraldRuns: number[][] = [];
  const wsRuns: number[][] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const herald = await HeraldProcess.start({ dataDir });
      try {
        const urls = stations.map((s) => `${herald.endpoints.ws}?station=${s}`);
        heraldRuns.push(
          await measureSteps(
            steps,
            urls,
            () => herald.rss(),
            () => herald.liveConnections(),
            'herald',
          ),
        );
      } finally {
        await herald.stop(false);
      }
      const bare = new Child('ws-idle-baseline', 'baselines/ws-server.ts');
      try {
        const endpoints = await bare.request<{ ws: string }>('listen');
        wsRuns.push(
          await measureSteps(
            steps,
            Array(max).fill(endpoints.ws),
            () => bare.request<number>('rss'),
            () => bare.request<number>('connections'),
            'ws',
          ),
        );
      } finally {
        await bare.stop();
      }
      const kb = (v: number) => (v / 1024).toFixed(1);
      log(`  run ${run + 1}: Herald ${heraldRuns[run].map(kb).join(' / ')} KB, ws ${wsRuns[run].map(kb).join(' / ')} KB per connection`);
    }
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return {
    steps,
    herald: steps.map((_, i) => median(heraldRuns.map((r) => r[i]))),
    ws: steps.map((_, i) => median(wsRuns.map((r) => r[i]))),
    heraldRuns,
    wsRuns,
  };
}
