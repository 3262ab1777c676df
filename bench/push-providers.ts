/**
 * FCM and Web Push beside APNs in the push scenario, each against its test double in a
 * process of its own (test/mocks/fcm-server.ts, test/mocks/webpush-server.ts), runs
 * interleaved:
 *  - FCM: Herald's outbox through its FCM channel vs a bare node:http2 client
 *    (bench/clients/fcm-http2.ts: one connection, one access token, many streams);
 *  - Web Push: Herald's outbox through its Web Push channel vs the `web-push` package's
 *    sendNotification (bench/clients/webpush-lib.ts).
 * Herald is timed from its first add request, the baseline from its first request, to the
 * double having accepted every push (see heraldRun and clientRun).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { benchConfig } from './lib/config.ts';
import { HeraldProcess } from './lib/herald.ts';
import { BENCH_DIR, Child, sleep, spawnWithJsonLine, stopProcess, wallNow } from './lib/ipc.ts';
import { median } from './lib/stats.ts';
import type { FcmDoubleInfo } from './clients/fcm-http2.ts';
import type { Subscription } from './clients/webpush-lib.ts';

export interface ProviderPushSide {
  rates: number[];
  median: number;
  cpuPerPush: number;
  doubleCpuPerPush: number;
}

export interface ProviderPushResult {
  pushes: number;
  /** The baseline's name: `node:http2` or `web-push`. */
  baseline: string;
  herald: ProviderPushSide & { outboxRates: number[]; outboxMedian: number };
  other: ProviderPushSide;
}

interface DoubleStats {
  accepted: number;
  cpu: number;
  /**
   * The double's wall clock when it accepted the first message since the last mark (GET
   * /mark) and its latest message; doubles that do not say are watched by polling alone.
   */
  firstAcceptedAt?: number;
  lastAcceptedAt?: number;
}

export function getJson<T>(url: string): Promise<T> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T);
          } catch (error) {
            reject(error as Error);
          }
        });
      })
      .on('error', reject);
  });
}

const DEVICES_PER_USER = 10;

/**
 * Streams the bare FCM client keeps in flight: as many as Herald's FCM channel opens against
 * this double, which advertises no limit (Http2Origin's cap, src/channels/http2-origin.ts),
 * so that both send with the same concurrency.
 */
const FCM_STREAMS = 1000;

/** A group of users with `DEVICES_PER_USER` push devices each, and a sender configured to post to it. */
async function pushGroup(
  herald: HeraldProcess,
  sender: Child,
  pushes: number,
  seed: (recipients: number) => Promise<{ userid: string }[]>,
) {
  const recipients = Math.max(1, Math.min(1000, Math.ceil(pushes / DEVICES_PER_USER / 2)));
  const perMessage = recipients * DEVICES_PER_USER;
  const messages = Math.max(1, Math.round(pushes / perMessage));
  const [senderUser] = await herald.seed('pushsender', 1);
  const members = await seed(recipients);
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
  return { perMessage, messages, total: messages * perMessage };
}

/**
 * Sends `count` messages to the group and waits until the double accepted all their pushes.
 * Timed from the sender's first add request to the double's acceptance of the last push
 * (its own clock when it tells it, as the FCM double does; otherwise the poll that saw it);
 * the outbox phase from the double's first accepted push. The double is watched from the
 * first request on, so that phase starts at that push, not after the sends were answered.
 */
async function heraldRun(herald: HeraldProcess, sender: Child, double: DoubleWatch, count: number, perMessage: number, label: string) {
  const cpuBefore = await herald.child.request<number>('cpu');
  const { accepted: before, cpu: doubleBefore } = await double.stats();
  await double.mark();
  const pushes = count * perMessage;
  let sent: { t0: number; failures: number; lastError: string } | undefined;
  let sendError: Error | undefined;
  const sending = sender
    .request<{ t0: number; failures: number; lastError: string }>('burst', { count, concurrency: 1, timeoutMs: 60_000 })
    .then(
      (result) => (sent = result),
      (error: Error) => (sendError = error),
    );
  const deadline = Date.now() + 120_000;
  let firstSeen = 0;
  for (;;) {
    if (sendError) throw sendError;
    if (sent && sent.failures > 0) throw new Error(`Herald ${label}: ${sent.failures} sends failed: ${sent.lastError}`);
    const stats = await double.stats();
    const now = wallNow();
    if (!firstSeen && stats.accepted > before) firstSeen = now;
    if (stats.accepted >= before + pushes) {
      await sending;
      if (sendError) throw sendError;
      if (sent!.failures > 0) throw new Error(`Herald ${label}: ${sent!.failures} sends failed: ${sent!.lastError}`);
      const first = stats.firstAcceptedAt || firstSeen;
      const last = stats.lastAcceptedAt || now;
      return {
        rate: pushes / ((last - sent!.t0) / 1000),
        outboxRate: pushes / ((last - first) / 1000),
        cpuPerPush: ((await herald.child.request<number>('cpu')) - cpuBefore) / pushes,
        doubleCpuPerPush: (stats.cpu - doubleBefore) / pushes,
      };
    }
    if (Date.now() > deadline) throw new Error(`Herald ${label}: ${stats.accepted - before} of ${pushes} pushes arrived`);
    await sleep(double.pollMs);
  }
}

/** Timed from the client's first request to its last answer, or to the double's acceptance of its last push when the double tells it. */
async function clientRun(child: Child, args: Record<string, unknown>, count: number, double: DoubleWatch, label: string) {
  const cpuBefore = await child.request<number>('cpu');
  const doubleBefore = (await double.stats()).cpu;
  const result = await child.request<{ t0: number; tEnd: number; delivered: number; failed: number; lastError: string }>(
    'run',
    { ...args, timeoutMs: 120_000 },
    130_000,
  );
  if (result.failed > 0 || result.delivered !== count) {
    throw new Error(`${label}: ${result.delivered} delivered, ${result.failed} failed: ${result.lastError}`);
  }
  const after = await double.stats();
  const end = after.lastAcceptedAt || result.tEnd;
  return {
    rate: count / ((end - result.t0) / 1000),
    cpuPerPush: ((await child.request<number>('cpu')) - cpuBefore) / count,
    doubleCpuPerPush: (after.cpu - doubleBefore) / count,
  };
}

/** A push double's counts over its stats endpoint. */
class DoubleWatch {
  /**
   * How often a Herald run asks: often when the poll itself is the clock, seldom when the
   * double keeps the time (each answer costs the double and this process CPU time that
   * the baseline's run, which is not polled, would not share).
   */
  pollMs = 5;
  constructor(private readonly statsUrl: string) {}
  async stats(): Promise<DoubleStats> {
    const stats = await getJson<DoubleStats>(`${this.statsUrl}/stats`);
    if (stats.lastAcceptedAt !== undefined) this.pollMs = 25;
    return stats;
  }
  /** Starts the double's "first accepted" clock anew, when it has one. */
  async mark(): Promise<void> {
    if (this.pollMs === 25) await getJson(`${this.statsUrl}/mark`);
  }
}

type Run = { rate: number; cpuPerPush: number; doubleCpuPerPush: number; outboxRate?: number };

/** Alternates Herald and the baseline `runs` times after one warm-up each. */
async function interleave(
  label: string,
  baseline: string,
  pushes: number,
  herald: () => Promise<Run>,
  other: () => Promise<Run>,
  log: (line: string) => void,
  /** With BENCH_CPU_PROF=1: the Herald whose CPU profile one extra run writes. */
  profiled?: HeraldProcess,
): Promise<ProviderPushResult> {
  await herald();
  await other();
  if (profiled) {
    const dir = path.join(BENCH_DIR, 'profiles');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(
      dir,
      `push-${label.replace(/\W/g, '').toLowerCase()}-herald-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`,
    );
    // A profiled run is extra, apart from the measured ones.
    await profiled.child.request('profileStart');
    await herald();
    await profiled.child.request('profileStop', { file });
    log(`  CPU profile of Herald pushing (${label}): ${path.relative(process.cwd(), file)}`);
  }
  const h: Run[] = [];
  const o: Run[] = [];
  for (let run = 0; run < benchConfig.runs; run++) {
    await sleep(300);
    h.push(await herald());
    await sleep(300);
    o.push(await other());
    log(
      `  ${label} run ${run + 1}: Herald ${Math.round(h[run].rate)} (outbox phase ${Math.round(h[run].outboxRate!)}), ${baseline} ${Math.round(o[run].rate)} pushes/s;` +
        ` CPU per push ${Math.round(h[run].cpuPerPush)} / ${Math.round(o[run].cpuPerPush)} µs; the double's ${Math.round(h[run].doubleCpuPerPush)} / ${Math.round(o[run].doubleCpuPerPush)} µs`,
    );
  }
  const side = (list: Run[]): ProviderPushSide => ({
    rates: list.map((r) => r.rate),
    median: median(list.map((r) => r.rate)),
    cpuPerPush: median(list.map((r) => r.cpuPerPush)),
    doubleCpuPerPush: median(list.map((r) => r.doubleCpuPerPush)),
  });
  const outboxRates = h.map((r) => r.outboxRate!);
  return { pushes, baseline, herald: { ...side(h), outboxRates, outboxMedian: median(outboxRates) }, other: side(o) };
}

export async function runFcmPush(log: (line: string) => void): Promise<ProviderPushResult> {
  const double = await spawnWithJsonLine<FcmDoubleInfo>('FCM double', ['test/mocks/fcm-server.ts']);
  const info = double.line;
  const stats = new DoubleWatch(info.statsUrl);
  const sender = new Child('fcm-push-sender', 'clients/sender.ts');
  const bare = new Child('fcm-http2', 'clients/fcm-http2.ts');
  let herald: HeraldProcess | undefined;
  try {
    herald = await HeraldProcess.start({
      env: { HERALD_FCM_URL: info.url, HERALD_FCM_SERVICE_ACCOUNT: info.serviceAccountFile, HERALD_CA_FILE: info.caFile },
    });
    const h = herald;
    const group = await pushGroup(h, sender, benchConfig.push.fcmPushes, (n) =>
      h.seed('fcmmember', n, DEVICES_PER_USER, false, { kind: 'fcm' }),
    );
    log(
      `FCM push: ${group.total} pushes per run (${group.messages} messages × ${group.perMessage} Android devices), ${benchConfig.runs} runs`,
    );
    await bare.request('setup', info);
    const tokens = Array.from({ length: group.total }, (_, i) => `fcm-bench-bare:${i}`);
    return await interleave(
      'FCM',
      'node:http2',
      group.total,
      () => heraldRun(h, sender, stats, group.messages, group.perMessage, 'FCM'),
      () => clientRun(bare, { tokens, streams: FCM_STREAMS }, tokens.length, stats, 'FCM node:http2'),
      log,
      benchConfig.cpuProfile ? h : undefined,
    );
  } finally {
    await Promise.allSettled([sender.stop(), bare.stop(), herald?.stop()]);
    await stopProcess(double.process);
  }
}

/** Web Push: connections the `web-push` sender keeps at once, as Herald's channel does per origin. */
const WEB_PUSH_IN_FLIGHT = 64;

export async function runWebPush(log: (line: string) => void): Promise<ProviderPushResult> {
  // With BENCH_CPU_PROF=1 the double's whole life is profiled too (warm-up and both senders' runs):
  // Node writes one profile per thread (the main one is the larger) into a directory of its own.
  const profileFlags = benchConfig.cpuProfile
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${path.join(BENCH_DIR, 'profiles', `push-webpush-double-${new Date().toISOString().replace(/[:.]/g, '-')}`)}`,
      ]
    : [];
  const double = await spawnWithJsonLine<{ origin: string; caFile: string; statsUrl: string }>(
    'Web Push double',
    ['test/mocks/webpush-server.ts'],
    undefined,
    profileFlags,
  );
  const info = double.line;
  const stats = new DoubleWatch(info.statsUrl);
  const sender = new Child('webpush-sender', 'clients/sender.ts');
  const library = new Child('webpush-lib', 'clients/webpush-lib.ts', { env: { NODE_EXTRA_CA_CERTS: info.caFile } });
  let herald: HeraldProcess | undefined;
  try {
    herald = await HeraldProcess.start({ env: { HERALD_CA_FILE: info.caFile, HERALD_WEBPUSH_ALLOW_PRIVATE: '1' } });
    const h = herald;
    const group = await pushGroup(h, sender, benchConfig.push.webPushes, async (n) => {
      const subscriptions = await getJson<Subscription[]>(`${info.statsUrl}/subscribe?n=${n * DEVICES_PER_USER}`);
      return h.seed('webpushmember', n, DEVICES_PER_USER, false, { kind: 'webpush', subscriptions });
    });
    log(
      `Web Push: ${group.total} pushes per run (${group.messages} messages × ${group.perMessage} browser subscriptions), ${benchConfig.runs} runs`,
    );
    const subscriptions = await getJson<Subscription[]>(`${info.statsUrl}/subscribe?n=${group.total}`);
    return await interleave(
      'Web Push',
      'web-push',
      group.total,
      () => heraldRun(h, sender, stats, group.messages, group.perMessage, 'Web Push'),
      () => clientRun(library, { subscriptions, streams: WEB_PUSH_IN_FLIGHT }, subscriptions.length, stats, 'web-push'),
      log,
      benchConfig.cpuProfile ? h : undefined,
    );
  } finally {
    await Promise.allSettled([sender.stop(), library.stop(), herald?.stop()]);
    await stopProcess(double.process);
  }
}
