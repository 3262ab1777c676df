/**
 * The latency ceiling: one node on SQLite, one-to-one messages at rising rates (the latency
 * scenario's devices and generator), until a step misses p99 < 50 ms, frames a message late
 * or cannot be sent at its rate. The answer is the highest rate that held.
 */
import { benchConfig, loopbackSources } from './lib/config.ts';
import { HeraldProcess } from './lib/herald.ts';
import { Child, sleep } from './lib/ipc.ts';
import type { LatencyRun } from './latency.ts';

/** The p99 a rate must keep to count as sustained. */
export const CEILING_P99_MS = 50;

export interface CeilingStep {
  rate: number;
  p50: number;
  p99: number;
  framed: number;
  sent: number;
  achievedRate: number;
  held: boolean;
  why?: string;
}

export interface CeilingResult {
  devices: number;
  seconds: number;
  steps: CeilingStep[];
  /** The highest rate that held; 0 when even the first did not. */
  ceiling: number;
}

function judge(rate: number, run: LatencyRun): CeilingStep {
  const step = { rate, p50: run.p50 ?? NaN, p99: run.p99 ?? NaN, framed: run.framed, sent: run.sent, achievedRate: run.achievedRate };
  if (run.failures > 0) return { ...step, held: false, why: `${run.failures} sends failed` };
  if (run.achievedRate < rate * 0.95) return { ...step, held: false, why: `only ${Math.round(run.achievedRate)}/s could be sent` };
  if (run.framed < run.sent) return { ...step, held: false, why: `${run.sent - run.framed} of ${run.sent} not framed in time` };
  if (!(step.p99 < CEILING_P99_MS)) return { ...step, held: false, why: `p99 ${step.p99.toFixed(1)} ms` };
  return { ...step, held: true };
}

export async function runLatencyCeiling(log: (line: string) => void): Promise<CeilingResult> {
  const { devices, seconds } = benchConfig.latency;
  const rates = benchConfig.ceilingRates;
  log(`latency ceiling: ${devices} devices, ${rates.join(', ')} messages/s for ${seconds} s each, until p99 ≥ ${CEILING_P99_MS} ms`);
  const herald = await HeraldProcess.start({ env: { HERALD_DATABASE_URL: '' } });
  const generator = new Child('latency-generator', 'clients/latency.ts');
  try {
    const users = await herald.seed('ceiling', devices - (devices % 2));
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
    await generator.request('run', { rate: rates[0], seconds: 3, label: 'warmup', graceMs: 2000 }, 60_000);
    const steps: CeilingStep[] = [];
    for (const rate of rates) {
      // Settle: the server is idle again before the next rate starts.
      await sleep(500);
      const run = await generator.request<LatencyRun>(
        'run',
        { rate, seconds, label: `rate${rate}`, graceMs: 3000 },
        seconds * 1000 + 60_000,
      );
      const step = judge(rate, run);
      steps.push(step);
      log(
        `  ${rate}/s: p50 ${step.p50.toFixed(2)} ms, p99 ${step.p99.toFixed(2)} ms (${step.framed}/${step.sent} framed, ` +
          `${Math.round(step.achievedRate)}/s sent): ${step.held ? 'held' : `NOT held, ${step.why}`}`,
      );
      if (!step.held) break;
    }
    const ceiling = Math.max(0, ...steps.filter((s) => s.held).map((s) => s.rate));
    return { devices, seconds, steps, ceiling };
  } finally {
    await Promise.allSettled([generator.stop(), herald.stop()]);
  }
}
