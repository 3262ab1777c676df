import dgram from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import type { AppContext } from '../context.ts';
import type { LiveConnection } from '../model/channel.ts';
import type { Notification } from '../model/notification.ts';
import { toFrame } from '../model/notification.ts';
import { feedHead, readFeed } from '../notify/feed.ts';
import { deviceOf, recordAck } from '../chat/devices.ts';
import {
  CLIENT_TYPES,
  COUNTER_CLOCK_WINDOW_MS,
  CounterClock,
  DatagramRefused,
  DatagramType,
  MAX_PAYLOAD_BYTES,
  RETRANSMIT_DELAYS_MS,
  ReplayWindow,
  ReturnRoutability,
  encodeDatagram,
  encodeRaw,
  fetchSignal,
  openDatagram,
  peekHeader,
  secretBytes,
  type Datagram,
  type RefusalReason,
} from './udp-protocol.ts';

/** A known device's secret is re-read this often, so a removed device stops being accepted. */
const SECRET_CACHE_MS = 60_000;
/** Stations that are not devices are remembered (bounded) so a flood of them costs no queries. */
const UNKNOWN_STATION_CACHE_MS = 30_000;
const UNKNOWN_STATION_CACHE_SIZE = 10_000;
/** Unacknowledged pushes per endpoint; beyond it the oldest is left to resume. */
const MAX_PENDING_PER_ENDPOINT = 256;
/** Notifications replayed per resume datagram; the client asks again when `more` is set. */
const RESUME_BATCH = 100;
/** Delay before acknowledged sequences are written to the database, to batch them. */
const ACK_FLUSH_MS = 500;
/**
 * Cookie slot: a cookie lives one to two slots, and each welcome carries a fresh one that
 * the next keep-alive echoes, so a slot is at least one keep-alive interval.
 */
const COOKIE_SLOT_MIN_MS = 60_000;

export interface UdpListener {
  port: number;
  close(): Promise<void>;
}

interface PendingPush {
  seq: number;
  payload: Buffer;
  attempt: number;
  timer: NodeJS.Timeout;
}

/**
 * One device's UDP endpoint, bound by an authenticated hello that echoed a cookie sent to
 * that address (so the device proved it receives there). It is its LiveConnection.
 */
interface Endpoint extends LiveConnection {
  address: string;
  port: number;
  /** When a hello with a valid cookie last came from this address. */
  lastHeardAt: number;
  pending: Map<number, PendingPush>;
  resuming: boolean;
}

/** What the server keeps per station whose datagrams it has verified. */
interface StationState {
  station: string;
  userId: string;
  secret: Buffer;
  checkedAt: number;
  window: ReplayWindow;
  endpoint?: Endpoint;
  ackedSeq: number;
  ackFlush?: NodeJS.Timeout;
}

/**
 * The UDP push listener on HERALD_UDP_PORT. Protocol in udp-protocol.ts and in the README
 * ("UDP push for desktop clients"):
 * an authenticated hello that echoes the cookie of a challenge sent to its source address
 * binds the device's endpoint; each notification goes as one
 * authenticated datagram, retransmitted with backoff until acknowledged; a resume replays
 * the durable feed. Datagrams that fail any check are dropped and counted, never answered.
 */
export async function startUdp(ctx: AppContext): Promise<UdpListener> {
  const { config, metrics, hub, log } = ctx;
  const db = ctx.store.db;
  const socket = dgram.createSocket({ type: config.host.includes(':') ? 'udp6' : 'udp4' });
  const clock = new CounterClock();
  const stations = new Map<string, StationState>();
  const unknownStations = new Map<string, number>();
  const lookups = new Map<string, Promise<StationState | undefined>>();
  const cookies = new ReturnRoutability(Math.max(COOKIE_SLOT_MIN_MS, 2 * config.udpKeepAliveMs));
  let closed = false;

  const drop = (reason: RefusalReason) => metrics.udpDropped.inc({ reason });

  function send(state: StationState, endpoint: Endpoint, type: number, payload: Buffer): void {
    const bytes = encodeRaw(state.secret, type, state.station, clock.next(), payload);
    socket.send(bytes, endpoint.port, endpoint.address, (error) => {
      if (error && !closed) log.debug({ err: error, station: state.station }, 'UDP send failed');
    });
  }

  function sendJson(state: StationState, endpoint: Endpoint, type: 'welcome' | 'push', body: Record<string, unknown>) {
    const bytes = encodeDatagram(state.secret, { type, station: state.station, counter: clock.next(), payload: body });
    socket.send(bytes, endpoint.port, endpoint.address);
  }

  /**
   * The only answer an address gets before it has proved it receives there: a cookie to
   * echo, never larger than the hello that asked, so a spoofed source gains no amplification.
   */
  function challenge(state: StationState, hello: Buffer, source: RemoteInfo) {
    const cookie = cookies.issue(state.station, source.address, source.port);
    const bytes = encodeDatagram(state.secret, { type: 'challenge', station: state.station, counter: clock.next(), payload: { cookie } });
    if (bytes.length > hello.length) throw new DatagramRefused('unpadded');
    socket.send(bytes, source.port, source.address);
  }

  /** Sends a push and keeps it until acknowledged, retrying on the documented schedule. */
  function push(state: StationState, endpoint: Endpoint, seq: number, frame: string, frameObject?: () => Record<string, unknown>) {
    let payload = Buffer.from(frame);
    if (payload.length > MAX_PAYLOAD_BYTES) {
      payload = Buffer.from(JSON.stringify(fetchSignal(frameObject ? frameObject() : JSON.parse(frame))));
    }
    const previous = endpoint.pending.get(seq);
    if (previous) {
      // Sent again by a resume: the retransmission schedule starts over.
      clearTimeout(previous.timer);
      endpoint.pending.delete(seq);
      metrics.udpPending.dec();
    }
    if (endpoint.pending.size >= MAX_PENDING_PER_ENDPOINT) {
      const [oldestSeq, oldest] = endpoint.pending.entries().next().value as [number, PendingPush];
      clearTimeout(oldest.timer);
      endpoint.pending.delete(oldestSeq);
      metrics.udpPending.dec();
      metrics.udpGaveUp.inc();
    }
    const pending: PendingPush = { seq, payload, attempt: 0, timer: undefined as unknown as NodeJS.Timeout };
    const transmit = () => {
      if (state.endpoint !== endpoint || endpoint.pending.get(seq) !== pending) return;
      if (pending.attempt > 0) metrics.udpRetransmits.inc();
      send(state, endpoint, DatagramType.push, payload);
      metrics.framesSent.inc({ channel: 'udp' });
      const delay = RETRANSMIT_DELAYS_MS[pending.attempt];
      pending.attempt++;
      if (delay === undefined) {
        // Given up: the device learns of it by resuming from its last sequence.
        pending.timer = setTimeout(() => settle(endpoint, seq, false), RETRANSMIT_DELAYS_MS.at(-1)).unref();
      } else {
        pending.timer = setTimeout(transmit, delay).unref();
      }
    };
    endpoint.pending.set(seq, pending);
    metrics.udpPending.inc();
    transmit();
  }

  function settle(endpoint: Endpoint, seq: number, acknowledged: boolean) {
    const pending = endpoint.pending.get(seq);
    if (!pending) return;
    clearTimeout(pending.timer);
    endpoint.pending.delete(seq);
    metrics.udpPending.dec();
    if (!acknowledged) metrics.udpGaveUp.inc();
  }

  function forget(state: StationState, why: string) {
    const endpoint = state.endpoint;
    if (!endpoint) return;
    state.endpoint = undefined;
    hub.remove(endpoint);
    metrics.liveConnections.dec({ channel: 'udp' });
    for (const seq of [...endpoint.pending.keys()]) settle(endpoint, seq, true);
    log.debug({ station: state.station, why }, 'UDP endpoint forgotten');
  }

  // A device removed or replaced on any node: its endpoint and its cached secret go at once,
  // so its next datagram is checked against the database (where it no longer is).
  ctx.bus.onDisconnect(({ station, reason }) => {
    const state = stations.get(station);
    if (!state) return;
    forget(state, reason);
    stations.delete(station);
  });

  function bind(state: StationState, source: RemoteInfo): { endpoint: Endpoint; isNew: boolean } {
    const existing = state.endpoint;
    if (existing) {
      // A NAT may give the client a new public port, or the client restarted: its
      // authenticated hello moves the endpoint, and it counts as new because pushes sent
      // to the old address meanwhile may be lost (the client resumes).
      const moved = existing.address !== source.address || existing.port !== source.port;
      existing.address = source.address;
      existing.port = source.port;
      existing.lastHeardAt = Date.now();
      return { endpoint: existing, isNew: moved };
    }
    const endpoint: Endpoint = {
      userId: state.userId,
      station: state.station,
      channel: 'udp',
      address: source.address,
      port: source.port,
      lastHeardAt: Date.now(),
      pending: new Map(),
      resuming: false,
      deliver(notification: Notification, frame: string) {
        if (state.endpoint !== endpoint) return;
        try {
          push(state, endpoint, notification.seq, frame, () => toFrame(notification));
        } catch (error) {
          // One device's trouble must not stop the hub from reaching the others.
          log.warn({ err: error, station: state.station }, 'UDP push failed');
        }
      },
    };
    state.endpoint = endpoint;
    hub.add(endpoint);
    metrics.liveConnections.inc({ channel: 'udp' });
    return { endpoint, isNew: true };
  }

  async function stationState(station: string): Promise<StationState | undefined> {
    const now = Date.now();
    const cached = stations.get(station);
    if (cached && now - cached.checkedAt < SECRET_CACHE_MS) return cached;
    const unknownAt = unknownStations.get(station);
    if (unknownAt !== undefined && now - unknownAt < UNKNOWN_STATION_CACHE_MS) return undefined;
    const running = lookups.get(station);
    if (running) return running;
    const lookup = (async () => {
      const device = await deviceOf(db, station);
      if (!device || !device.udp_secret) {
        if (cached) {
          forget(cached, 'device removed');
          stations.delete(station);
        }
        if (unknownStations.size >= UNKNOWN_STATION_CACHE_SIZE) unknownStations.clear();
        unknownStations.set(station, Date.now());
        return undefined;
      }
      if (cached && cached.userId === device.user_id && cached.secret.equals(secretBytes(device.udp_secret))) {
        cached.checkedAt = Date.now();
        return cached;
      }
      if (cached) forget(cached, 'device changed');
      const state: StationState = {
        station,
        userId: device.user_id,
        secret: secretBytes(device.udp_secret),
        checkedAt: Date.now(),
        window: cached?.window ?? new ReplayWindow(),
        ackedSeq: device.acked_seq,
      };
      stations.set(station, state);
      return state;
    })().finally(() => lookups.delete(station));
    lookups.set(station, lookup);
    return lookup;
  }

  function scheduleAckFlush(state: StationState) {
    if (state.ackFlush) return;
    state.ackFlush = setTimeout(() => {
      state.ackFlush = undefined;
      recordAck(db, state.station, state.ackedSeq).catch((error) => log.warn({ err: error }, 'recording a UDP ack failed'));
    }, ACK_FLUSH_MS).unref();
  }

  async function resume(state: StationState, endpoint: Endpoint, after: number) {
    if (endpoint.resuming) return; // one at a time per device; the client asks again on `more`
    endpoint.resuming = true;
    try {
      const missed = await readFeed(db, state.userId, after, RESUME_BATCH + 1);
      const more = missed.length > RESUME_BATCH;
      const batch = missed.slice(0, RESUME_BATCH);
      if (state.endpoint !== endpoint) return;
      for (const notification of batch) push(state, endpoint, notification.seq, JSON.stringify(toFrame(notification)));
      const through = batch.length > 0 ? batch[batch.length - 1].seq : after;
      sendJson(state, endpoint, 'push', { type: 'resumed', after, through, more });
    } finally {
      endpoint.resuming = false;
    }
  }

  /** Checks a datagram fully; throws DatagramRefused with the reason to count. */
  async function verify(bytes: Buffer): Promise<{ state: StationState; datagram: Datagram }> {
    const header = peekHeader(bytes);
    if (!CLIENT_TYPES.has(header.type)) throw new DatagramRefused('wrong_direction');
    const state = await stationState(header.station);
    if (!state) throw new DatagramRefused('unknown_station');
    const datagram = openDatagram(state.secret, bytes);
    // Counters are the client's clock in microseconds: one far from ours was recorded long
    // ago (or the client's clock is wrong), so it is refused even if this node never saw it.
    const counterMs = Number(datagram.counter / 1000n);
    if (Math.abs(counterMs - Date.now()) > COUNTER_CLOCK_WINDOW_MS) throw new DatagramRefused('stale');
    if (!state.window.accept(datagram.counter)) throw new DatagramRefused('replayed');
    return { state, datagram };
  }

  async function receive(bytes: Buffer, source: RemoteInfo) {
    const { state, datagram } = await verify(bytes);
    const payload = datagram.payload;
    if (datagram.type === 'hello') {
      // The MAC proves who sent the hello, not that they receive at its source address:
      // only a cookie sent there proves that. Without one nothing is bound or refreshed,
      // even from the bound address, so an address proven once cannot be kept live by
      // spoofed keep-alives after its owner has left it.
      if (!cookies.verify(payload.cookie, state.station, source.address, source.port)) {
        challenge(state, bytes, source);
        return;
      }
      const { endpoint, isNew } = bind(state, source);
      // A newly bound endpoint learns where the feed stands, so a client without history
      // knows which sequences are new; keep-alives skip the query.
      const head = isNew ? await feedHead(db, state.userId) : undefined;
      if (state.endpoint !== endpoint) return;
      sendJson(state, endpoint, 'welcome', {
        keepalive: config.udpKeepAliveMs,
        timeout: config.udpEndpointTimeoutMs,
        new: isNew,
        time: Date.now(),
        cookie: cookies.issue(state.station, endpoint.address, endpoint.port),
        ...(head ? { lastseq: head.lastSeq } : {}),
      });
      return;
    }
    const endpoint = state.endpoint;
    // Acks and resumes count only from the endpoint a proven hello bound: hello first. They
    // do not keep it alive; only keep-alives that echo a fresh cookie do.
    if (!endpoint || endpoint.address !== source.address || endpoint.port !== source.port) {
      throw new DatagramRefused('unbound');
    }
    if (datagram.type === 'ack') {
      const seq = payload.seq;
      if (!Number.isSafeInteger(seq) || (seq as number) < 0) throw new DatagramRefused('malformed');
      settle(endpoint, seq as number, true);
      if ((seq as number) > state.ackedSeq) {
        state.ackedSeq = seq as number;
        scheduleAckFlush(state);
      }
      return;
    }
    const after = payload.after;
    if (!Number.isSafeInteger(after) || (after as number) < 0) throw new DatagramRefused('malformed');
    await resume(state, endpoint, after as number);
  }

  socket.on('message', (bytes, source) => {
    receive(bytes, source).catch((error: unknown) => {
      if (error instanceof DatagramRefused) drop(error.reason);
      else if (!closed) {
        drop('malformed');
        log.warn({ err: error }, 'UDP datagram failed');
      }
    });
  });
  socket.on('error', (error) => log.error({ err: error }, 'UDP socket error'));

  // Forget endpoints that stopped sending keep-alives; check a few times per timeout.
  const sweepEvery = Math.max(25, Math.min(Math.floor(config.udpEndpointTimeoutMs / 4), 5000));
  const sweeper = setInterval(() => {
    const silentSince = Date.now() - config.udpEndpointTimeoutMs;
    for (const state of stations.values()) {
      if (state.endpoint && state.endpoint.lastHeardAt < silentSince) {
        forget(state, 'silent');
        metrics.udpEndpointsForgotten.inc();
      }
    }
  }, sweepEvery).unref();

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: config.host, port: config.udpPort }, () => {
      socket.off('error', reject);
      resolve();
    });
  });

  return {
    port: socket.address().port,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweeper);
      for (const state of stations.values()) {
        forget(state, 'closing');
        if (state.ackFlush) {
          clearTimeout(state.ackFlush);
          state.ackFlush = undefined;
          await recordAck(db, state.station, state.ackedSeq).catch(() => undefined);
        }
      }
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
