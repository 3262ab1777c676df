/**
 * Mobile push: pushes per second to the APNs test double (test/mocks/apns-server.ts, a
 * process of its own, which checks each provider token once per connection, as APNs
 * does). Three senders against the same double, runs interleaved:
 *  - Herald: messages to a group whose members have iOS devices; the pushes go from the
 *    durable outbox through the APNs channel. Timed from the first add request to the
 *    double's acceptance of the last push (its own clock; so the feed and outbox writes
 *    are inside); the outbox phase from its acceptance of the first.
 *  - a bare node:http2 client: one connection, one provider token, many streams;
 *  - @parse/node-apn with token auth.
 */
import fs from 'node:fs';
import path from 'node:path';
import { benchConfig } from './lib/config.ts';
import { HeraldProcess } from './lib/herald.ts';
import { BENCH_DIR, Child, sleep, spawnWithJsonLine, stopProcess } from './lib/ipc.ts';
import { median } from './lib/stats.ts';
import { deviceTokens, type DoubleInfo } from './clients/apns-common.ts';
import { getJson } from './push-providers.ts';

export interface PushResult {
  pushes: number;
  herald: {
    rates: number[];
    median: number;
    outboxRates: number[];
    outboxMedian: number;
    cpuPerPush: number;
    doubleCpuPerPush: number;
    doubleBusy: number;
  };
  http2: { rates: number[]; median: number; cpuPerPush: number; doubleCpuPerPush: number; doubleBusy: number };
  nodeApn: { rates: number[]; median: number; cpuPerPush: number; doubleCpuPerPush: number; doubleBusy: number };
  tokenVerifications: number;
}

/** Watches the double's accepted count over its plain HTTP stats endpoint, from the orchestrator. */
class DoubleWatch {
  constructor(private readonly statsUrl: string) {}
  stats(): Promise<{
    accepted: number;
    tokenVerifications: number;
    answers: Record<string, number>;
    cpu: number;
    firstAcceptedAt: number;
    lastAcceptedAt: number;
  }> {
    return getJson(`${this.statsUrl}/stats`);
  }
  /** Starts the double's "first accepted" clock anew. */
  async mark(): Promise<void> {
    await getJson(`${this.statsUrl}/mark`);
  }
}

/**
 * How often a Herald run asks the double how far it got. The double keeps the times of the
 * first and the last push it accepted, so the poll is not the clock: each answer costs the
 * double and this process CPU time that the baselines' runs, which are not polled, do not share.
 */
const POLL_MS = 25;

const GROUP_DEVICES_PER_USER = 10;

export async function runPush(log: (line: string) => void): Promise<PushResult> {
  const pushes = benchConfig.push.pushes;
  const streams = benchConfig.push.streams;
  const runs = benchConfig.runs;
  // One message reaches `perMessage` devices: recipients × 10 iOS devices each.
  const recipients = Math.max(1, Math.min(1000, Math.ceil(pushes / GROUP_DEVICES_PER_USER / 2)));
  const perMessage = recipients * GROUP_DEVICES_PER_USER;
  const messages = Math.max(1, Math.round(pushes / perMessage));
  const total = messages * perMessage;
  log(
    `mobile push: ${total} pushes per run (${messages} messages × ${recipients} users × ${GROUP_DEVICES_PER_USER} iOS devices), ${runs} runs`,
  );

  const double = await spawnWithJsonLine<DoubleInfo & { statsUrl: string }>('APNs double', [
    'test/mocks/apns-server.ts',
    '--max-streams',
    '1000',
  ]);
  const info = double.line;
  const watch = new DoubleWatch(info.statsUrl);
  let herald: HeraldProcess | undefined;
  const sender = new Child('push-sender', 'clients/sender.ts');
  const bare = new Child('apns-http2', 'clients/apns-http2.ts');
  const nodeApn = new Child('apns-node-apn', 'clients/apns-node-apn.ts');
  try {
    herald = await HeraldProcess.start({
      env: {
        HERALD_APNS_URL: info.url,
        HERALD_APNS_KEY_FILE: info.keyFile,
        HERALD_APNS_KEY_ID: info.keyId,
        HERALD_APNS_TEAM_ID: info.teamId,
        HERALD_APNS_TOPIC: info.topic,
        HERALD_CA_FILE: info.caFile,
      },
    });
    const [senderUser] = await herald.seed('pushsender', 1);
    const members = await herald.seed('pushmember', recipients, GROUP_DEVICES_PER_USER, true);
    const created = await sender.request<{ conversation: { id: string } }>('ozeki', {
      baseUrl: herald.endpoints.http,
      station: senderUser.stations[0],
      api: 'chatconversation',
      body: { action: 'create', participantids: members.map((m) => m.userid), displayname: 'Bench push group' },
    });
    await sender.request('configure', {
      kind: 'ozeki',
      baseUrl: herald.endpoints.http,
      station: senderUser.stations[0],
      conversationId: created.conversation.id,
    });
    await bare.request('setup', info);
    await nodeApn.request('setup', info);

    // CPU time (user + system) per push of the sending process: Herald's whole server, or the client.
    const cpu = { herald: [] as number[], http2: [] as number[], nodeApn: [] as number[] };
    // The double's CPU time per push while each sender ran, and the share of the wall time it was busy:
    // near 1.0 the double, not the sender, set the rate.
    const doubleCpu = { herald: [] as number[], http2: [] as number[], nodeApn: [] as number[] };
    const doubleBusy = { herald: [] as number[], http2: [] as number[], nodeApn: [] as number[] };
    const recordDouble = (list: 'herald' | 'http2' | 'nodeApn', cpuBefore: number, cpuAfter: number, count: number, seconds: number) => {
      doubleCpu[list].push((cpuAfter - cpuBefore) / count);
      doubleBusy[list].push((cpuAfter - cpuBefore) / 1e6 / seconds);
    };
    const heraldRun = async (count: number) => {
      const cpuBefore = await herald!.child.request<number>('cpu');
      const { accepted: before, cpu: doubleBefore } = await watch.stats();
      await watch.mark();
      const expected = before + count * perMessage;
      const sent = await sender.request<{ t0: number; failures: number; lastError: string }>('burst', {
        count,
        concurrency: 1,
        timeoutMs: 60_000,
      });
      if (sent.failures > 0) throw new Error(`Herald push: ${sent.failures} sends failed: ${sent.lastError}`);
      const deadline = Date.now() + 120_000;
      for (;;) {
        const { accepted, cpu: doubleNow, firstAcceptedAt, lastAcceptedAt } = await watch.stats();
        if (accepted >= expected) {
          cpu.herald.push(((await herald!.child.request<number>('cpu')) - cpuBefore) / (count * perMessage));
          recordDouble('herald', doubleBefore, doubleNow, count * perMessage, (lastAcceptedAt - sent.t0) / 1000);
          return {
            rate: (count * perMessage) / ((lastAcceptedAt - sent.t0) / 1000),
            outboxRate: (count * perMessage) / ((lastAcceptedAt - firstAcceptedAt) / 1000),
          };
        }
        if (Date.now() > deadline) throw new Error(`Herald push: ${accepted - before} of ${expected - before} pushes arrived`);
        await sleep(POLL_MS);
      }
    };
    const clientRun = async (child: Child, tokens: string[], label: string, cpuList: number[], list?: 'http2' | 'nodeApn') => {
      const cpuBefore = await child.request<number>('cpu');
      const doubleBefore = (await watch.stats()).cpu;
      const result = await child.request<{ t0: number; tEnd: number; delivered: number; failed: number; lastError: string }>(
        'run',
        { tokens, streams, timeoutMs: 120_000 },
        130_000,
      );
      if (result.failed > 0 || result.delivered !== tokens.length) {
        throw new Error(`${label}: ${result.delivered} delivered, ${result.failed} failed: ${result.lastError}`);
      }
      cpuList.push(((await child.request<number>('cpu')) - cpuBefore) / tokens.length);
      // Timed to the double's acceptance of the last push, as Herald's runs are.
      const after = await watch.stats();
      const seconds = ((after.lastAcceptedAt || result.tEnd) - result.t0) / 1000;
      if (list) recordDouble(list, doubleBefore, after.cpu, tokens.length, seconds);
      return tokens.length / seconds;
    };

    const bareTokens = deviceTokens(total, 'http2');
    const apnTokens = deviceTokens(total, 'nodeapn');
    // Warm-up: connections, provider tokens, JIT.
    await heraldRun(1);
    await clientRun(bare, bareTokens.slice(0, 2000), 'node:http2', []);
    await clientRun(nodeApn, apnTokens.slice(0, 2000), '@parse/node-apn', []);
    if (benchConfig.cpuProfile) {
      const dir = path.join(BENCH_DIR, 'profiles');
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `push-herald-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
      // A profiled run is extra, apart from the measured ones.
      await herald.child.request('profileStart');
      await heraldRun(messages);
      await herald.child.request('profileStop', { file });
      log(`  CPU profile of Herald pushing: ${path.relative(process.cwd(), file)}`);
    }
    // Neither the warm-up nor the profiled run counts.
    cpu.herald.length = 0;
    doubleCpu.herald.length = 0;
    doubleBusy.herald.length = 0;
    const h: number[] = [];
    const ho: number[] = [];
    const b: number[] = [];
    const n: number[] = [];
    for (let run = 0; run < runs; run++) {
      await sleep(300);
      const r = await heraldRun(messages);
      h.push(r.rate);
      ho.push(r.outboxRate);
      await sleep(300);
      b.push(await clientRun(bare, bareTokens, 'node:http2', cpu.http2, 'http2'));
      await sleep(300);
      n.push(await clientRun(nodeApn, apnTokens, '@parse/node-apn', cpu.nodeApn, 'nodeApn'));
      log(
        `  run ${run + 1}: Herald ${Math.round(h[run])} (outbox phase ${Math.round(ho[run])}), node:http2 ${Math.round(b[run])}, @parse/node-apn ${Math.round(n[run])} pushes/s;` +
          ` CPU per push ${Math.round(cpu.herald[run])} / ${Math.round(cpu.http2[run])} / ${Math.round(cpu.nodeApn[run])} µs;` +
          ` the double's ${Math.round(doubleCpu.herald[run])} / ${Math.round(doubleCpu.http2[run])} / ${Math.round(doubleCpu.nodeApn[run])} µs,` +
          ` busy ${doubleBusy.herald[run].toFixed(2)} / ${doubleBusy.http2[run].toFixed(2)} / ${doubleBusy.nodeApn[run].toFixed(2)}`,
      );
    }
    const stats = await watch.stats();
    return {
      pushes: total,
      herald: {
        rates: h,
        median: median(h),
        outboxRates: ho,
        outboxMedian: median(ho),
        cpuPerPush: median(cpu.herald),
        doubleCpuPerPush: median(doubleCpu.herald),
        doubleBusy: median(doubleBusy.herald),
      },
      http2: {
        rates: b,
        median: median(b),
        cpuPerPush: median(cpu.http2),
        doubleCpuPerPush: median(doubleCpu.http2),
        doubleBusy: median(doubleBusy.http2),
      },
      nodeApn: {
        rates: n,
        median: median(n),
        cpuPerPush: median(cpu.nodeApn),
        doubleCpuPerPush: median(doubleCpu.nodeApn),
        doubleBusy: median(doubleBusy.nodeApn),
      },
      tokenVerifications: stats.tokenVerifications,
    };
  } finally {
    await Promise.allSettled([sender.stop(), bare.stop(), nodeApn.stop(), herald?.stop()]);
    await stopProcess(double.process);
  }
}
