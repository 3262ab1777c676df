/**
 * Fan-out: N connected WebSocket devices in one group conversation receive M messages,
 * each sent through the Ozeki API with the durable feed on. Rate = N·M deliveries over
 * the time from the first request leaving the sender to the last frame arriving.
 * Beside it, in the same run: a bare ws server (the ceiling) and socket.io (the peer),
 * each sending every client its own frame of Herald's frame size on each POST /send.
 */
import fs from 'node:fs';
import path from 'node:path';
import { benchConfig, loopbackSources } from './lib/config.ts';
import { Fleet, waitForCount } from './lib/fleet.ts';
import { BENCH_ADMIN_TOKEN, HeraldProcess } from './lib/herald.ts';
import { BENCH_DIR, Child, sleep } from './lib/ipc.ts';
import { median } from './lib/stats.ts';
import type { Target } from './clients/sender.ts';

export interface FanoutSide {
  rates: number[];
  median: number;
  frameBytes: number;
  /** Server CPU time (user + system) per delivery, µs: a figure a busy machine disturbs less. */
  cpuPerDelivery: number[];
  cpuMedian: number;
}

export interface FanoutResult {
  devices: number;
  messages: number;
  herald: FanoutSide;
  /** The same devices of the same Herald, reached through the gateway API (`POST /v1/notifications`). */
  gateway: FanoutSide;
  ws: FanoutSide;
  socketio: FanoutSide;
  profile?: string;
}

export interface Prepared {
  herald?: HeraldProcess;
  target: Target;
  /** The gateway API's request to the same recipients (Herald only). */
  gatewayTarget?: Target;
  fleet: Fleet;
  sender: Child;
  live(): Promise<number>;
  cpu(): Promise<number>;
  stop(): Promise<void>;
}

const SIDES = ['herald', 'gateway', 'ws', 'socketio'] as const;
type Side = (typeof SIDES)[number];

/** One burst of `count` messages; returns deliveries per second and the mean frame size. */
export async function burst(p: Prepared, count: number, label: string) {
  const { concurrency } = benchConfig.fanout;
  const timeoutMs = 120_000;
  await p.fleet.arm(count);
  const cpuBefore = await p.cpu();
  const sent = await p.sender.request<{ t0: number; failures: number; lastError: string }>(
    'burst',
    { count, concurrency, timeoutMs },
    timeoutMs + 10_000,
  );
  if (sent.failures > 0) throw new Error(`${label}: ${sent.failures} sends failed: ${sent.lastError}`);
  const got = await p.fleet.wait(timeoutMs);
  if (!got.complete) throw new Error(`${label}: ${got.received} of ${got.expected} frames arrived`);
  const cpu = (await p.cpu()) - cpuBefore;
  await sleep(200);
  return {
    rate: got.received / ((got.lastAt - sent.t0) / 1000),
    frameBytes: got.bytes / got.received,
    cpuPerDelivery: cpu / got.received,
    deliveries: got.received,
  };
}

export async function warmUp(p: Prepared, messages: number, label: string) {
  await p.sender.request('configure', p.target);
  return burst(p, Math.max(2, Math.ceil(messages / 5)), label);
}

async function prepareHerald(devices: number, sources: string[], nodeFlags: string[]): Promise<Prepared & { herald: HeraldProcess }> {
  const herald = await HeraldProcess.start({ nodeFlags });
  const users = await herald.seed('fanout', devices + 1);
  const [senderUser, ...recipients] = users;
  const sender = new Child('fanout-sender', 'clients/sender.ts');
  const fleet = new Fleet(benchConfig.clientProcesses, 'fanout-herald');
  try {
    await fleet.connect(
      'ws',
      recipients.map((u) => `${herald.endpoints.ws}?station=${u.stations[0]}`),
      sources,
    );
    await waitForCount(() => herald.liveConnections(), devices, 60_000, 'Herald WebSocket registrations');
    const created = await sender.request<{ conversation: { id: string } }>('ozeki', {
      baseUrl: herald.endpoints.http,
      station: senderUser.stations[0],
      api: 'chatconversation',
      body: { action: 'create', participantids: recipients.map((u) => u.userid), displayname: 'Bench group' },
    });
    await sleep(500); // the conversation-list frames of the create go by first
    return {
      herald,
      target: { kind: 'ozeki', baseUrl: herald.endpoints.http, station: senderUser.stations[0], conversationId: created.conversation.id },
      gatewayTarget: {
        kind: 'gateway',
        baseUrl: herald.endpoints.http,
        token: BENCH_ADMIN_TOKEN,
        to: recipients.map((u) => u.userid),
        conversationId: created.conversation.id,
      },
      fleet,
      sender,
      live: () => herald.liveConnections(),
      cpu: () => herald.child.request<number>('cpu'),
      async stop() {
        await fleet.stop();
        await sender.stop();
        await herald.stop();
      },
    };
  } catch (error) {
    await Promise.allSettled([fleet.stop(), sender.stop(), herald.stop()]);
    throw error;
  }
}

async function prepareBaseline(kind: 'ws' | 'socketio', devices: number, sources: string[], frameBytes: number): Promise<Prepared> {
  const server = new Child(`${kind}-baseline`, kind === 'ws' ? 'baselines/ws-server.ts' : 'baselines/socketio-server.ts');
  const sender = new Child(`${kind}-sender`, 'clients/sender.ts');
  const fleet = new Fleet(benchConfig.clientProcesses, `fanout-${kind}`);
  try {
    const endpoints = await server.request<{ http: string; ws: string }>('listen');
    await server.request('configure', { frameBytes: Math.round(frameBytes) });
    await fleet.connect(kind === 'ws' ? 'ws' : 'socketio', Array(devices).fill(endpoints.ws), sources);
    await waitForCount(() => server.request<number>('connections'), devices, 60_000, `${kind} connections`);
    return {
      target: { kind: 'plain', baseUrl: endpoints.http },
      fleet,
      sender,
      live: () => server.request<number>('connections'),
      cpu: () => server.request<number>('cpu'),
      async stop() {
        await fleet.stop();
        await sender.stop();
        await server.stop();
      },
    };
  } catch (error) {
    await Promise.allSettled([fleet.stop(), sender.stop(), server.stop()]);
    throw error;
  }
}

export async function runFanout(log: (line: string) => void): Promise<FanoutResult> {
  const { devices, messages } = benchConfig.fanout;
  const runs = benchConfig.runs;
  const sources = loopbackSources(benchConfig.sourceAddresses);

  const nodeFlags: string[] = [];

  log(`fan-out: ${devices} devices × ${messages} messages, ${runs} runs each, interleaved`);
  const prepared: Partial<Record<Side, Prepared>> = {};
  try {
    prepared.herald = await prepareHerald(devices, sources, nodeFlags);
    // Herald's own frame size sets the baselines' frame size.
    const { frameBytes } = await warmUp(prepared.herald, messages, 'Herald');
    // The gateway API: the same node and devices, a sender of its own.
    const gatewaySender = new Child('fanout-gateway-sender', 'clients/sender.ts');
    prepared.gateway = {
      ...prepared.herald,
      target: prepared.herald.gatewayTarget!,
      sender: gatewaySender,
      stop: () => gatewaySender.stop(),
    };
    await warmUp(prepared.gateway, messages, 'Herald send API');
    prepared.ws = await prepareBaseline('ws', devices, sources, frameBytes);
    await warmUp(prepared.ws, messages, 'ws');
    prepared.socketio = await prepareBaseline('socketio', devices, sources, frameBytes);
    await warmUp(prepared.socketio, messages, 'socket.io');

    // The machine may be shared: runs alternate between the three servers, so a busy
    // moment costs each of them alike, and the ratios are taken within this run.
    let profile: string | undefined;
    if (benchConfig.cpuProfile) {
      const dir = path.join(BENCH_DIR, 'profiles');
      fs.mkdirSync(dir, { recursive: true });
      profile = path.join(dir, `fanout-herald-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
      // A profiled Herald is slower: its bursts are extra, apart from the measured ones.
      await prepared.herald.herald!.child.request('profileStart');
      for (let run = 0; run < runs; run++) await burst(prepared.herald, messages, 'Herald (profiled)');
      await prepared.herald.herald!.child.request('profileStop', { file: profile });
      log(`  CPU profile of Herald's fan-out: ${path.relative(process.cwd(), profile)}`);
    }
    const sides = { herald: [] as number[], gateway: [] as number[], ws: [] as number[], socketio: [] as number[] };
    const cpu = { herald: [] as number[], gateway: [] as number[], ws: [] as number[], socketio: [] as number[] };
    const bytes = { herald: frameBytes, gateway: 0, ws: 0, socketio: 0 };
    for (let run = 0; run < runs; run++) {
      for (const kind of SIDES) {
        const result = await burst(prepared[kind]!, messages, kind);
        sides[kind].push(result.rate);
        cpu[kind].push(result.cpuPerDelivery);
        bytes[kind] = result.frameBytes;
      }
      log(
        `  run ${run + 1}: Herald ${Math.round(sides.herald[run])}, send API ${Math.round(sides.gateway[run])}, ws ${Math.round(sides.ws[run])}, socket.io ${Math.round(sides.socketio[run])} deliveries/s`,
      );
    }
    const side = (kind: Side): FanoutSide => ({
      rates: sides[kind],
      median: median(sides[kind]),
      frameBytes: bytes[kind],
      cpuPerDelivery: cpu[kind],
      cpuMedian: median(cpu[kind]),
    });
    return { devices, messages, herald: side('herald'), gateway: side('gateway'), ws: side('ws'), socketio: side('socketio'), profile };
  } finally {
    // The gateway side shares Herald's node and fleet: its own sender stops first.
    await prepared.gateway?.stop();
    delete prepared.gateway;
    await Promise.allSettled(Object.values(prepared).map((p) => p.stop()));
  }
}
