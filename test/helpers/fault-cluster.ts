import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { WebSocket } from 'ws';
import { OzekiClient, ozekiTime } from '../../client/ozeki.ts';
import { adminPost, startHerald, type HeraldProcess } from './herald-process.ts';
import { newStation } from './server.ts';
import { killPrivateServices, startPrivatePostgres, startPrivateRedis, type PrivateService } from './private-services.ts';

/*
 * What the fault tests share: `herald serve` nodes as processes of their own, users with one
 * WebSocket device each, a sender, and the tally of what every device got by notification id.
 */

const SECRET_KEY = '5a'.repeat(32);

/** Node processes started by startNode (from the moment they are spawned), killed by killNodes whatever state they are in. */
const nodes = new Set<ChildProcess>();
const dirs: string[] = [];
process.once('exit', () => {
  for (const child of nodes) child.kill('SIGKILL');
});
const START_TIMEOUT_MS = 30_000;

export async function startNode(env: Record<string, string>): Promise<HeraldProcess> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-fault-'));
  dirs.push(dataDir);
  let spawned: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      spawned?.kill('SIGKILL');
      reject(new Error(`herald serve did not listen within ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
  });
  try {
    return await Promise.race([
      startHerald(dataDir, { HERALD_SECRET_KEY: SECRET_KEY, HERALD_LOG_LEVEL: 'info', ...env }, (child) => {
        spawned = child;
        nodes.add(child);
      }),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function killNodes(): Promise<void> {
  for (const child of nodes) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
  }
  nodes.clear();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** One device's WebSocket: every notification frame it got, counted by id, and whether they came in order. */
export class Device {
  readonly got = new Map<string, number>();
  lastSeq = 0;
  outOfOrder = 0;
  socket: WebSocket | undefined;
  closed: Promise<void> = Promise.resolve();

  constructor(
    readonly userId: string,
    readonly station: string,
  ) {}

  /** Connects with `since` (the last sequence it got) and resolves once the replay is over. */
  connect(wsUrl: string, timeoutMs = 15_000): Promise<void> {
    const socket = new WebSocket(`${wsUrl}?station=${this.station}&since=${this.lastSeq}`);
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error(`device ${this.station} was not synced within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string; id?: string; seq?: number };
        if (frame.type === 'synced') {
          clearTimeout(timer);
          resolve();
        }
        if ((frame.type !== 'notification' && frame.type !== 'clean') || frame.id === undefined) return;
        this.got.set(frame.id, (this.got.get(frame.id) ?? 0) + 1);
        if (frame.seq! <= this.lastSeq) this.outOfOrder++;
        else this.lastSeq = frame.seq!;
      });
    });
  }

  close(): void {
    this.socket?.terminate();
  }
}

/** Everything in a user's feed, by id and kind, read over a fresh WebSocket from sequence 0. */
export async function feedOf(wsUrl: string, station: string, timeoutMs = 15_000): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  const socket = new WebSocket(`${wsUrl}?station=${station}&since=0`);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the feed of ${station} was not read within ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', reject);
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as { type: string; id?: string; kind?: string };
        if (frame.type === 'synced') {
          clearTimeout(timer);
          resolve();
        } else if (frame.id !== undefined) ids.set(frame.id, frame.kind ?? frame.type);
      });
    });
  } finally {
    socket.terminate();
  }
  return ids;
}

export interface Tally {
  expected: number;
  delivered: number;
  lost: number;
  duplicated: number;
  /** Ids a device got that are not in its feed (there must be none). */
  unknown: number;
  outOfOrder: number;
}

/** Each device's user's feed, read once the senders are done: what each device must get. */
export async function feedsOf(wsUrl: string, devices: Device[], readers: Map<string, string>): Promise<Map<Device, Map<string, string>>> {
  const feeds = new Map<Device, Map<string, string>>();
  for (const device of devices) feeds.set(device, await feedOf(wsUrl, readers.get(device.userId)!));
  return feeds;
}

/** Compares what each device got with its user's feed, by notification id. */
export function tally(feeds: Map<Device, Map<string, string>>): Tally {
  const total: Tally = { expected: 0, delivered: 0, lost: 0, duplicated: 0, unknown: 0, outOfOrder: 0 };
  for (const [device, feed] of feeds) {
    total.expected += feed.size;
    for (const id of feed.keys()) if (!device.got.has(id)) total.lost++;
    for (const [id, count] of device.got) {
      if (!feed.has(id)) total.unknown++;
      else total.delivered++;
      total.duplicated += count - 1;
    }
    total.outOfOrder += device.outOfOrder;
  }
  return total;
}

/** How many notifications of their feeds the devices still lack. */
export function missingCount(feeds: Map<Device, Map<string, string>>): number {
  let missing = 0;
  for (const [device, feed] of feeds) for (const id of feed.keys()) if (!device.got.has(id)) missing++;
  return missing;
}

/** How many of each feed's notifications are messages (one per accepted message). */
export function messagesIn(feed: Map<string, string>): number {
  let count = 0;
  for (const type of feed.values()) if (type === 'message') count++;
  return count;
}

export interface Audience {
  /** The sender's clients, one per node (the same station). */
  senders: OzekiClient[];
  conversationId: string;
  devices: Device[];
  /** Per user, a second station of theirs that only reads the feed at the end. */
  readers: Map<string, string>;
}

/**
 * A sender and `count` recipients in one group conversation, each recipient with a device and
 * a second station for reading the feed; the devices are not connected yet.
 */
export async function makeAudience(nodeUrls: string[], count: number): Promise<Audience> {
  const base = nodeUrls[0];
  const sender = await adminPost(base, '/users', { email: `sender-${newStation()}@example.org`, name: 'Sender' });
  const senderStation = newStation();
  const first = new OzekiClient(base, senderStation);
  await first.login(sender.apikey);
  const devices: Device[] = [];
  const readers = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const user = await adminPost(base, '/users', { email: `r${i}-${newStation()}@example.org`, name: `R${i}` });
    await adminPost(base, '/friends', { a: sender.userid, b: user.userid });
    const device = new OzekiClient(base, newStation());
    await device.login(user.apikey);
    const reader = new OzekiClient(base, newStation());
    await reader.login(user.apikey);
    devices.push(new Device(user.userid, device.station));
    readers.set(user.userid, reader.station);
  }
  const created = await first.createConversation(devices.map((d) => d.userId));
  const conversationId = (created.conversation as { id: string }).id;
  const senders = nodeUrls.map((url) => new OzekiClient(url, senderStation));
  return { senders, conversationId, devices, readers };
}

/**
 * Sends `count` messages, `parallel` at a time, through the senders in turn; `during` is
 * called once when a third has been sent and runs alongside the rest. Says how many were
 * accepted (answered OK) and how many refused.
 */
export async function sendMessages(
  audience: Audience,
  count: number,
  options: { parallel?: number; during?: () => Promise<void> } = {},
): Promise<{ accepted: number; refused: number }> {
  const parallel = options.parallel ?? 4;
  let accepted = 0;
  let refused = 0;
  let fault: Promise<void> | undefined;
  // Message ids are the client's: a repeated id is the same message (not a new notification).
  const prefix = newStation().slice(0, 8);
  for (let i = 0; i < count; i += parallel) {
    if (!fault && options.during && i >= count / 3) fault = options.during();
    const batch = Array.from({ length: Math.min(parallel, count - i) }, (_, k) => {
      const sender = audience.senders[(i + k) % audience.senders.length];
      return sender.call('chatconversation', {
        action: 'add',
        conversationid: audience.conversationId,
        instance: '',
        message: JSON.stringify({ ID: `${prefix}-${i + k}`, Type: 'Message', Created: ozekiTime(), ValidUntil: '', Data: 'eA==' }),
      });
    });
    for (const result of await Promise.allSettled(batch)) {
      if (result.status === 'fulfilled' && result.value.httpStatus === 200) accepted++;
      else {
        refused++;
        if (refused === 1) console.warn('first refusal:', result.status === 'fulfilled' ? result.value.body : result.reason);
      }
    }
  }
  await fault;
  return { accepted, refused };
}

/**
 * A private PostgreSQL and Redis for one describe block, started before its tests and, with
 * every node, gone after them. Read `services.postgres` / `services.redis` inside the tests.
 */
export function usePrivateCluster(): { postgres: PrivateService; redis: PrivateService } {
  const services = {} as { postgres: PrivateService; redis: PrivateService };
  beforeAll(async () => {
    services.postgres = await startPrivatePostgres();
    services.redis = await startPrivateRedis();
  }, 120_000);
  afterAll(async () => {
    await killNodes();
    await services.redis?.destroy();
    await services.postgres?.destroy();
    await killPrivateServices();
  }, 60_000);
  return services;
}
