/**
 * The latency load generator: sends the messages, and (in a process of its own,
 * bench/clients/latency-receiver.ts) holds every device's WebSocket. Send times and frame
 * arrivals are read from the machine's monotonic clock, which both processes share.
 * Devices are paired into one-to-one conversations; message k goes from device k mod D
 * to its partner, open loop at a fixed rate. Latency = frame arrival at the recipient −
 * the moment the add request was handed to the socket (stricter than "accepted": it also
 * counts the request's own way in). The HTTP answer time is kept beside it.
 *
 * BENCH_LATENCY_ONE_PROCESS=1 holds the WebSockets in this process as before: every stall of
 * this loop (building and answering 1,000 requests a second) then also stamps the frames
 * that arrived meanwhile late.
 */
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type WebSocket from 'ws';
import { openLiveSocket } from '../lib/live-socket.ts';
import { Child, monotonicMs, serveParent } from '../lib/ipc.ts';
import { percentile } from '../lib/stats.ts';

const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
const DATA = Buffer.alloc(96, 7).toString('base64');

interface Device {
  userid: string;
  station: string;
  /** The node this device connects to and sends through (cluster scenarios); the setup's own otherwise. */
  http?: string;
  ws?: string;
  socket?: WebSocket;
}

interface Pending {
  sentAt: number;
  recipient: number;
  answeredAt?: number;
  frameAt?: number;
}

const ONE_PROCESS = process.env.BENCH_LATENCY_ONE_PROCESS === '1';

let devices: Device[] = [];
/** The process that holds the WebSockets and stamps the frames' arrivals (unless ONE_PROCESS). */
let receiver: Child | undefined;
let conversations: string[] = [];
const pending = new Map<string, Pending>();

function ozekiTime(ms = Date.now()): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

function post(device: Device, api: string, body: Record<string, unknown>, onAnswer: (status: number, text: string) => void): void {
  const text = JSON.stringify({ clientversioncode: 3, timestamp: ozekiTime(), ...body });
  const request = http.request(
    `${device.http}/?srv=chatserver&api=${api}`,
    {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'ozeki-station': device.station },
    },
    (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => onAnswer(response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
    },
  );
  request.on('error', (error) => onAnswer(0, error.message));
  request.end(text);
}

function call(device: Device, api: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) =>
    post(device, api, body, (status, text) => {
      try {
        const parsed = JSON.parse(text) as Record<string, unknown>;
        if (parsed.status === 'OK') resolve(parsed);
        else reject(new Error(`${api}: ${status} ${String(parsed.errormessage)}`));
      } catch {
        reject(new Error(`${api}: ${status} ${text.slice(0, 200)}`));
      }
    }),
  );
}

function onFrame(deviceIndex: number, data: Buffer): void {
  const at = monotonicMs();
  if (data.indexOf('"kind":"message"') === -1) return;
  const frame = JSON.parse(data.toString()) as { data?: { messageid?: string } };
  const id = frame.data?.messageid;
  const entry = id ? pending.get(id) : undefined;
  if (entry && entry.recipient === deviceIndex && entry.frameAt === undefined) entry.frameAt = at;
}

async function pool<T>(items: T[], width: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i], i);
      }
    }),
  );
}

serveParent({
  /** Pairs the devices into conversations (through the API) and connects every device. */
  async setup(args: { baseUrl: string; ws: string; devices: Device[]; localAddresses: string[] }) {
    devices = args.devices.map((d) => ({ ...d, http: d.http ?? args.baseUrl, ws: d.ws ?? args.ws }));
    const pairs = Array.from({ length: devices.length >> 1 }, (_, i) => i);
    conversations = [];
    await pool(pairs, 16, async (i) => {
      const created = (await call(devices[2 * i], 'chatconversation', {
        action: 'create',
        participantids: [devices[2 * i + 1].userid],
      })) as { conversation: { id: string } };
      conversations[i] = created.conversation.id;
    });
    if (!ONE_PROCESS) {
      receiver = new Child('latency-receiver', 'clients/latency-receiver.ts');
      await receiver.request(
        'connect',
        { urls: devices.map((d) => `${d.ws}?station=${d.station}`), localAddresses: args.localAddresses },
        180_000,
      );
      return { conversations: conversations.length, connected: devices.length };
    }
    await pool(devices, 100, async (device, i) => {
      device.socket = await openLiveSocket(
        `${device.ws}?station=${device.station}`,
        args.localAddresses[i % args.localAddresses.length],
        (data) => onFrame(i, data),
      );
    });
    return { conversations: conversations.length, connected: devices.length };
  },
  /** Sends `rate` messages a second for `seconds`, then waits for the stragglers. */
  async run({ rate, seconds, label, graceMs }: { rate: number; seconds: number; label: string; graceMs: number }) {
    pending.clear();
    const total = Math.round(rate * seconds);
    const ids: string[] = [];
    let failures = 0;
    let lastError = '';
    // This process's own stalls delay the frames' timestamps as much as the server's do.
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    await receiver?.request('arm', { label, total });
    const started = performance.now();
    await new Promise<void>((resolve) => {
      let sent = 0;
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
        while (sent < due) {
          const k = sent++;
          const from = k % devices.length;
          const to = from ^ 1;
          const id = `${label}-${k}`;
          const entry: Pending = { sentAt: monotonicMs(), recipient: to };
          pending.set(id, entry);
          ids.push(id);
          post(
            devices[from],
            'chatconversation',
            {
              action: 'add',
              conversationid: conversations[from >> 1],
              instance: '',
              message: JSON.stringify({ ID: id, Type: 'Message', Created: ozekiTime(), ValidUntil: '', Data: DATA }),
            },
            (status, text) => {
              entry.answeredAt = monotonicMs();
              if (status !== 200) {
                failures++;
                lastError = `${status} ${text.slice(0, 200)}`;
              }
            },
          );
        }
        if (sent >= total) resolve();
        else setTimeout(tick, 1);
      };
      tick();
    });
    const sendSeconds = (performance.now() - started) / 1000;
    let receiverLoopMax: number | undefined;
    let misdelivered = 0;
    if (receiver) {
      const collected = await receiver.request<{ arrivals: Array<number | null>; misdelivered: number; loopMax: number }>(
        'collect',
        { graceMs },
        graceMs + 60_000,
      );
      collected.arrivals.forEach((at, k) => {
        if (at !== null) pending.get(ids[k])!.frameAt = at;
      });
      receiverLoopMax = collected.loopMax;
      misdelivered = collected.misdelivered;
    } else {
      const deadline = performance.now() + graceMs;
      while (performance.now() < deadline && ids.some((id) => pending.get(id)!.frameAt === undefined)) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
    loopDelay.disable();
    const latencies: number[] = [];
    const answers: number[] = [];
    let frameBeforeAnswer = 0;
    for (const id of ids) {
      const entry = pending.get(id)!;
      if (entry.answeredAt !== undefined) answers.push(entry.answeredAt - entry.sentAt);
      if (entry.frameAt === undefined) continue;
      latencies.push(entry.frameAt - entry.sentAt);
      if (entry.answeredAt === undefined || entry.frameAt < entry.answeredAt) frameBeforeAnswer++;
    }
    return {
      sent: total,
      framed: latencies.length,
      failures,
      lastError,
      achievedRate: total / sendSeconds,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      // A reduce, not Math.max(...latencies): a 5-minute run has 300,000 of them, past the argument limit.
      max: latencies.length ? latencies.reduce((a, b) => (b > a ? b : a)) : NaN,
      answerP50: percentile(answers, 50),
      answerP99: percentile(answers, 99),
      frameBeforeAnswer,
      misdelivered,
      clientLoopMax: loopDelay.max / 1e6,
      receiverLoopMax,
    };
  },
  async stop() {
    await receiver?.stop();
    for (const device of devices) device.socket?.terminate();
    agent.destroy();
  },
});
