/**
 * The latency bench's receiving side: holds every device's WebSocket and does nothing but
 * note when each chat-message frame arrives, on the machine's monotonic clock
 * (process.hrtime, CLOCK_MONOTONIC: the same clock in every process of the machine, so the
 * sender's send times and these arrival times subtract). Started by bench/clients/latency.ts.
 *
 * It used to be the sender's own process: the 1,000 requests a second it built and answered,
 * and their garbage, stopped that event loop for up to 8–15 ms now and then, and every frame
 * that arrived meanwhile was stamped late by as much. Here a frame is read with a string
 * search and its arrival kept in a number array; nothing else runs on this loop.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type WebSocket from 'ws';
import { openLiveSocket } from '../lib/live-socket.ts';
import { monotonicMs, serveParent } from '../lib/ipc.ts';

const MESSAGE_MARK = Buffer.from('"kind":"message"');
const ID_MARK = Buffer.from('"messageid":"');
const QUOTE = 0x22;

interface Armed {
  /** The run's message IDs are `${label}-${k}`. */
  prefix: Buffer;
  /** Arrival of message k's frame at its recipient (NaN until then). */
  arrivals: Float64Array;
  devices: number;
  received: number;
  /** Frames of this run that came to their recipient twice, or with an ID past the run's. */
  misdelivered: number;
  loopDelay: IntervalHistogram;
  whenAll?: () => void;
}

const sockets: WebSocket[] = [];
let armed: Armed | undefined;

function onFrame(deviceIndex: number, data: Buffer): void {
  const at = monotonicMs();
  const run = armed;
  if (!run || data.indexOf(MESSAGE_MARK) === -1) return;
  const idAt = data.indexOf(ID_MARK);
  if (idAt === -1) return;
  const start = idAt + ID_MARK.length;
  if (data.compare(run.prefix, 0, run.prefix.length, start, start + run.prefix.length) !== 0) return;
  let k = 0;
  let i = start + run.prefix.length;
  for (; i < data.length && data[i] !== QUOTE; i++) k = k * 10 + (data[i] - 0x30);
  // The sender's own device gets the message too (its other screens show it): not counted.
  if (((k % run.devices) ^ 1) !== deviceIndex) return;
  if (k >= run.arrivals.length || !Number.isNaN(run.arrivals[k])) {
    run.misdelivered++;
    return;
  }
  run.arrivals[k] = at;
  if (++run.received === run.arrivals.length) run.whenAll?.();
}

serveParent({
  /** Connects every device; resolves once each has had its "synced" (live from then on). */
  async connect(args: { urls: string[]; localAddresses: string[] }) {
    let next = 0;
    const open = async (i: number) => {
      sockets[i] = await openLiveSocket(args.urls[i], args.localAddresses[i % args.localAddresses.length], (data) => onFrame(i, data));
    };
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (next < args.urls.length) await open(next++);
      }),
    );
    return { connected: sockets.length };
  },
  /** Expects the messages `${label}-0` … `${label}-${total - 1}` from now on. */
  arm({ label, total }: { label: string; total: number }) {
    armed?.loopDelay.disable();
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    armed = {
      prefix: Buffer.from(`${label}-`),
      arrivals: new Float64Array(total).fill(NaN),
      devices: sockets.length,
      received: 0,
      misdelivered: 0,
      loopDelay,
    };
    return {};
  },
  /** Waits until every frame of the armed run came or `graceMs` passed; its arrivals (null: none). */
  async collect({ graceMs }: { graceMs: number }) {
    const run = armed;
    if (!run) throw new Error('collect before arm');
    if (run.received < run.arrivals.length) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        run.whenAll = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    armed = undefined;
    run.loopDelay.disable();
    return {
      arrivals: Array.from(run.arrivals, (at) => (Number.isNaN(at) ? null : at)),
      misdelivered: run.misdelivered,
      loopMax: run.loopDelay.max / 1e6,
      loopP99: run.loopDelay.percentile(99) / 1e6,
    };
  },
  stop() {
    for (const socket of sockets) socket?.terminate();
  },
});
