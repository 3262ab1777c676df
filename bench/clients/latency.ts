/**
 * The latency load generator: holds every device's WebSocket AND sends the messages, so
 * that send time and frame arrival are read from one process clock (performance.now()).
 * Devices are paired into one-to-one conversations; message k goes from device k mod D
 * to its partner, open loop at a fixed rate. Latency = frame arrival at the recipient −
 * the moment the add request was handed to the socket (stricter than "accepted": it also
 * counts the request's own way in). The HTTP answer time is kept beside it.
 */
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { serveParent } from '../lib/ipc.ts';
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

let devices: Device[] = [];
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
  const at = performance.now();
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
    await pool(devices, 100, async (device, i) => {
      await new Promise<void>((resolve, reject) => {
        const socket = new WebSocket(`${device.ws}?station=${device.station}`, {
          localAddress: args.localAddresses[i % args.localAddresses.length],
          perMessageDeflate: false,
        });
        socket.once('error', reject);
        socket.on('message', (data: Buffer) => onFrame(i, data));
        // Live from here on: the server sends "synced" once the (empty) replay is done.
        socket.on('message', function synced(data: Buffer) {
          if (data.indexOf('"type":"synced"') !== -1) {
            socket.off('message', synced);
            resolve();
          }
        });
        device.socket = socket;
      });
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
          const entry: Pending = { sentAt: performance.now(), recipient: to };
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
              entry.answeredAt = performance.now();
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
    const deadline = performance.now() + graceMs;
    while (performance.now() < deadline && ids.some((id) => pending.get(id)!.frameAt === undefined)) {
      await new Promise((resolve) => setTimeout(resolve, 20));
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
      clientLoopMax: loopDelay.max / 1e6,
    };
  },
  stop() {
    for (const device of devices) device.socket?.terminate();
    agent.destroy();
  },
});
