import dgram from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import type { Logger } from 'pino';
import type { Devices } from '../chat/services.ts';
import type { Bus } from '../cluster/bus.ts';
import type { Config } from '../config.ts';
import type { Metrics } from '../metrics.ts';
import type { LiveConnection } from '../model/channel.ts';
import type { LiveProgress } from '../chat/devices.ts';
import type { Notification } from '../model/notification.ts';
import { toFrame } from '../model/notification.ts';
import type { FeedReader } from '../notify/feed.ts';
import type { Hub } from '../notify/hub.ts';
import type { RateLimiter } from '../limits/limiter.ts';
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
} from '../../client/udp-protocol.ts';

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
/** A device that stays in use has its activity written again at most this often (push hold). */
const ACTIVE_REFRESH_MS = 5000;
/**
 * Cookie slot: a cookie lives one to two slots, and each welcome carries a fresh one that
 * the next keep-alive echoes, so a slot is at least one keep-alive interval.
 */
const COOKIE_SLOT_MIN_MS = 60_000;

/** What the UDP channel is built from. */
export interface UdpChannelParts {
  config: Pick<Config, 'host' | 'udpPort' | 'udpKeepAliveMs' | 'udpEndpointTimeoutMs'>;
  feed: FeedReader;
  devices: Pick<Devices, 'deviceOf' | 'udpSecretOf' | 'recordLiveProgress'>;
  hub: Pick<Hub, 'add' | 'remove'>;
  /** Devices removed on any node: their endpoints and cached secrets go at once. */
  bus: Pick<Bus, 'onDisconnect'>;
  metrics: Pick<
    Metrics,
    'framesSent' | 'liveConnections' | 'udpDropped' | 'udpRetransmits' | 'udpGaveUp' | 'udpPending' | 'udpEndpointsForgotten'
  >;
  /** Hellos per source address (each costs a MAC check and may draw a challenge). */
  limits?: Pick<RateLimiter, 'take'>;
  log: Logger;
}

/** A push sent to an endpoint and kept until acknowledged. */
class PendingPush {
  attempt = 0;
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly endpoint: UdpEndpoint,
    readonly seq: number,
    readonly payload: Buffer,
  ) {}
}

/** What the server keeps per station whose datagrams it has verified. */
interface StationState {
  station: string;
  userId: string;
  secret: Buffer;
  /** The secret as the database holds it (sealed): a new text means a new secret. */
  sealedSecret: string;
  checkedAt: number;
  window: ReplayWindow;
  endpoint?: UdpEndpoint;
  ackedSeq: number;
  ackFlush?: NodeJS.Timeout;
  /** When an ack last said the device is in use (0: idle, or not since it was looked up). */
  activeAt: number;
  recordedActiveAt: number;
  /** The device went idle (or its endpoint was forgotten) and that is not yet written. */
  idleToRecord: boolean;
  /** Highest sequence acknowledged while in use. */
  seenSeq: number;
}

/**
 * One device's UDP endpoint, bound by an authenticated hello that echoed a cookie sent to
 * that address (so the device proved it receives there). It is its LiveConnection.
 */
class UdpEndpoint implements LiveConnection {
  readonly channel = 'udp' as const;
  readonly userId: string;
  readonly station: string;
  /** When a hello with a valid cookie last came from this address. */
  lastHeardAt = Date.now();
  /** Forgets the endpoint when its timeout has passed without a keep-alive. */
  silence: NodeJS.Timeout | undefined = undefined;
  readonly pending = new Map<number, PendingPush>();
  resuming = false;
  /** The highest sequence pushed (live or by a resume); the client asks for gaps below it. */
  deliveredSeq: number | undefined = undefined;

  constructor(
    private readonly udp: UdpChannel,
    readonly state: StationState,
    public address: string,
    public port: number,
  ) {
    this.userId = state.userId;
    this.station = state.station;
  }

  deliver(notification: Notification, frame: string): void {
    if (this.state.endpoint !== this || this.udp.forgetIfSilent(this)) return;
    try {
      this.udp.push(this, notification.seq, frame, notification);
    } catch (error) {
      // One device's trouble must not stop the hub from reaching the others.
      this.udp.log.warn({ err: error, station: this.station }, 'UDP push failed');
    }
  }
}

/**
 * The UDP push listener on HERALD_UDP_PORT. Protocol in client/udp-protocol.ts (the client
 * package owns the wire format) and in the README ("UDP push for desktop clients"):
 * an authenticated hello that echoes the cookie of a challenge sent to its source address
 * binds the device's endpoint; each notification goes as one
 * authenticated datagram, retransmitted with backoff until acknowledged; a resume replays
 * the durable feed. Datagrams that fail any check are dropped and counted, never answered.
 */
export class UdpChannel {
  readonly log: Logger;
  private readonly config: UdpChannelParts['config'];
  private readonly feed: FeedReader;
  private readonly devices: UdpChannelParts['devices'];
  private readonly hub: UdpChannelParts['hub'];
  private readonly metrics: UdpChannelParts['metrics'];
  private readonly limits: UdpChannelParts['limits'];
  private readonly socket: dgram.Socket;
  private readonly clock = new CounterClock();
  private readonly stations = new Map<string, StationState>();
  private readonly unknownStations = new Map<string, number>();
  private readonly lookups = new Map<string, Promise<StationState | undefined>>();
  private readonly cookies: ReturnRoutability;
  private closed = false;
  // Timer callbacks bound once, given the push as an argument: a push costs no closure.
  private readonly onRetransmitDue = (pending: PendingPush) => this.transmit(pending);
  private readonly onGaveUp = (pending: PendingPush) => this.settle(pending.endpoint, pending.seq, false);
  private readonly onSilent = (endpoint: UdpEndpoint) => {
    if (this.forgetIfSilent(endpoint)) return;
    // A keep-alive restarts the timer, so this is a timer a clock tick early: wait out the rest.
    const rest = endpoint.lastHeardAt + this.config.udpEndpointTimeoutMs - Date.now();
    endpoint.silence = setTimeout(this.onSilent, rest, endpoint).unref();
  };

  constructor(parts: UdpChannelParts) {
    this.config = parts.config;
    this.feed = parts.feed;
    this.devices = parts.devices;
    this.hub = parts.hub;
    this.metrics = parts.metrics;
    this.limits = parts.limits;
    this.log = parts.log;
    this.socket = dgram.createSocket({ type: this.config.host.includes(':') ? 'udp6' : 'udp4' });
    this.cookies = new ReturnRoutability(Math.max(COOKIE_SLOT_MIN_MS, 2 * this.config.udpKeepAliveMs));
    // A device removed or replaced on any node: its endpoint and its cached secret go at once,
    // so its next datagram is checked against the database (where it no longer is).
    parts.bus.onDisconnect(({ station, reason }) => this.disconnect(station, reason));
    this.socket.on('message', (bytes, source) => this.onDatagram(bytes, source));
    this.socket.on('error', (error) => this.log.error({ err: error }, 'UDP socket error'));
  }

  /** Binds HERALD_UDP_PORT; resolves to the port bound. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind({ address: this.config.host, port: this.config.udpPort }, () => {
        this.socket.off('error', reject);
        resolve();
      });
    });
    return this.port;
  }

  get port(): number {
    return this.socket.address().port;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const state of this.stations.values()) {
      this.forget(state, 'closing');
      if (state.ackFlush || state.idleToRecord) {
        clearTimeout(state.ackFlush);
        state.ackFlush = undefined;
        await this.devices.recordLiveProgress([this.progressOf(state)]).catch(() => undefined);
      }
    }
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private onDatagram(bytes: Buffer, source: RemoteInfo): void {
    this.receive(bytes, source).catch((error: unknown) => {
      if (error instanceof DatagramRefused) this.metrics.udpDropped.inc({ reason: error.reason });
      else if (!this.closed) {
        this.metrics.udpDropped.inc({ reason: 'malformed' });
        this.log.warn({ err: error }, 'UDP datagram failed');
      }
    });
  }

  private async receive(bytes: Buffer, source: RemoteInfo): Promise<void> {
    const { state, datagram } = await this.verify(bytes, source);
    const payload = datagram.payload;
    if (datagram.type === 'hello') {
      await this.hello(state, payload, bytes, source);
      return;
    }
    const endpoint = state.endpoint;
    // Acks and resumes count only from the endpoint a proven hello bound: hello first. They
    // do not keep it alive; only keep-alives that echo a fresh cookie do.
    if (!endpoint || endpoint.address !== source.address || endpoint.port !== source.port || this.forgetIfSilent(endpoint)) {
      throw new DatagramRefused('unbound');
    }
    if (datagram.type === 'ack') {
      this.acknowledge(state, endpoint, payload.seq, payload.idle === true);
      return;
    }
    const after = payload.after;
    if (!Number.isSafeInteger(after) || (after as number) < 0) throw new DatagramRefused('malformed');
    await this.resume(state, endpoint, after as number);
  }

  /** Checks a datagram fully; throws DatagramRefused with the reason to count. */
  private async verify(bytes: Buffer, source: RemoteInfo): Promise<{ state: StationState; datagram: Datagram }> {
    const header = peekHeader(bytes);
    if (!CLIENT_TYPES.has(header.type)) throw new DatagramRefused('wrong_direction');
    // Before the station look-up and the MAC: a flood of hellos costs a map lookup each.
    if (header.type === 'hello' && this.limits && this.limits.take('udp', source.address) > 0) throw new DatagramRefused('rate_limited');
    const state = await this.stationState(header.station);
    if (!state) throw new DatagramRefused('unknown_station');
    const datagram = openDatagram(state.secret, bytes);
    // Counters are the client's clock in microseconds: one far from ours was recorded long
    // ago (or the client's clock is wrong), so it is refused even if this node never saw it.
    const counterMs = Number(datagram.counter / 1000n);
    if (Math.abs(counterMs - Date.now()) > COUNTER_CLOCK_WINDOW_MS) throw new DatagramRefused('stale');
    if (!state.window.accept(datagram.counter)) throw new DatagramRefused('replayed');
    return { state, datagram };
  }

  /** The station's secret and state: cached, or looked up once however many datagrams ask meanwhile. */
  private async stationState(station: string): Promise<StationState | undefined> {
    const now = Date.now();
    const cached = this.stations.get(station);
    if (cached && now - cached.checkedAt < SECRET_CACHE_MS) return cached;
    const unknownAt = this.unknownStations.get(station);
    if (unknownAt !== undefined && now - unknownAt < UNKNOWN_STATION_CACHE_MS) return undefined;
    const running = this.lookups.get(station);
    if (running) return running;
    const lookup = this.lookUp(station, cached).finally(() => this.lookups.delete(station));
    this.lookups.set(station, lookup);
    return lookup;
  }

  private async lookUp(station: string, cached: StationState | undefined): Promise<StationState | undefined> {
    const device = await this.devices.deviceOf(station);
    if (!device || !device.udp_secret_sealed) {
      if (cached) {
        this.forget(cached, 'device removed');
        this.stations.delete(station);
      }
      if (this.unknownStations.size >= UNKNOWN_STATION_CACHE_SIZE) this.unknownStations.clear();
      this.unknownStations.set(station, Date.now());
      return undefined;
    }
    // The same sealed text is the same secret: it is opened only when it changed.
    if (cached && cached.userId === device.user_id && cached.sealedSecret === device.udp_secret_sealed) {
      cached.checkedAt = Date.now();
      return cached;
    }
    if (cached) this.forget(cached, 'device changed');
    const state: StationState = {
      station,
      userId: device.user_id,
      secret: secretBytes(this.devices.udpSecretOf(device)!),
      sealedSecret: device.udp_secret_sealed,
      checkedAt: Date.now(),
      window: cached?.window ?? new ReplayWindow(),
      ackedSeq: device.acked_seq,
      activeAt: 0,
      recordedActiveAt: 0,
      idleToRecord: false,
      seenSeq: device.seen_seq,
    };
    this.stations.set(station, state);
    return state;
  }

  private async hello(state: StationState, payload: Datagram['payload'], bytes: Buffer, source: RemoteInfo): Promise<void> {
    // The MAC proves who sent the hello, not that they receive at its source address:
    // only a cookie sent there proves that. Without one nothing is bound or refreshed,
    // even from the bound address, so an address proven once cannot be kept live by
    // spoofed keep-alives after its owner has left it.
    if (!this.cookies.verify(payload.cookie, state.station, source.address, source.port)) {
      this.challenge(state, bytes, source);
      return;
    }
    const { endpoint, isNew } = this.bind(state, source);
    // A newly bound endpoint learns where the feed stands, so a client without history
    // knows which sequences are new; keep-alives skip the query.
    const head = isNew ? await this.feed.head(state.userId) : undefined;
    if (state.endpoint !== endpoint) return;
    this.sendJson(state, endpoint, 'welcome', {
      keepalive: this.config.udpKeepAliveMs,
      timeout: this.config.udpEndpointTimeoutMs,
      new: isNew,
      time: Date.now(),
      cookie: this.cookies.issue(state.station, endpoint.address, endpoint.port),
      ...(head ? { lastseq: head.lastSeq } : {}),
    });
  }

  /**
   * The only answer an address gets before it has proved it receives there: a cookie to
   * echo, never larger than the hello that asked, so a spoofed source gains no amplification.
   */
  private challenge(state: StationState, hello: Buffer, source: RemoteInfo): void {
    const cookie = this.cookies.issue(state.station, source.address, source.port);
    const bytes = encodeDatagram(state.secret, {
      type: 'challenge',
      station: state.station,
      counter: this.clock.next(),
      payload: { cookie },
    });
    if (bytes.length > hello.length) throw new DatagramRefused('unpadded');
    this.socket.send(bytes, source.port, source.address);
  }

  private bind(state: StationState, source: RemoteInfo): { endpoint: UdpEndpoint; isNew: boolean } {
    const existing = state.endpoint;
    if (existing) {
      // A NAT may give the client a new public port, or the client restarted: its
      // authenticated hello moves the endpoint, and it counts as new because pushes sent
      // to the old address meanwhile may be lost (the client resumes).
      const moved = existing.address !== source.address || existing.port !== source.port;
      existing.address = source.address;
      existing.port = source.port;
      existing.lastHeardAt = Date.now();
      existing.silence?.refresh();
      return { endpoint: existing, isNew: moved };
    }
    const endpoint = new UdpEndpoint(this, state, source.address, source.port);
    state.endpoint = endpoint;
    endpoint.silence = setTimeout(this.onSilent, this.config.udpEndpointTimeoutMs, endpoint).unref();
    this.hub.add(endpoint);
    this.metrics.liveConnections.inc({ channel: 'udp' });
    return { endpoint, isNew: true };
  }

  /**
   * An ack also says whether the device is in use (the push hold): it is, unless the ack
   * carries `"idle":true`. A client repeats its last ack to say it is in use with nothing new.
   */
  private acknowledge(state: StationState, endpoint: UdpEndpoint, seq: unknown, idle: boolean): void {
    if (!Number.isSafeInteger(seq) || (seq as number) < 0) throw new DatagramRefused('malformed');
    this.settle(endpoint, seq as number, true);
    let changed = false;
    if ((seq as number) > state.ackedSeq) {
      state.ackedSeq = seq as number;
      changed = true;
    }
    if (idle) {
      if (state.activeAt > 0 || state.recordedActiveAt > 0) this.becameIdle(state);
    } else {
      state.activeAt = Date.now();
      if ((seq as number) > state.seenSeq) {
        state.seenSeq = seq as number;
        changed = true;
      }
      if (state.recordedActiveAt === 0 || state.activeAt - state.recordedActiveAt >= ACTIVE_REFRESH_MS) changed = true;
    }
    if (changed || state.idleToRecord) this.scheduleAckFlush(state);
  }

  private becameIdle(state: StationState): void {
    state.activeAt = 0;
    state.recordedActiveAt = 0;
    state.idleToRecord = true;
  }

  /** Acknowledged sequences are written in batches, at most one write per station per ACK_FLUSH_MS. */
  private scheduleAckFlush(state: StationState): void {
    if (state.ackFlush) return;
    state.ackFlush = setTimeout(() => {
      state.ackFlush = undefined;
      this.devices
        .recordLiveProgress([this.progressOf(state)])
        .catch((error) => this.log.warn({ err: error }, 'recording a UDP ack failed'));
    }, ACK_FLUSH_MS).unref();
  }

  /** What is to be written of a station: its acks, and whether it is in use. */
  private progressOf(state: StationState): LiveProgress {
    const now = Date.now();
    const progress: LiveProgress = { station: state.station, ackedSeq: state.ackedSeq, deliveredSeq: 0, seenAt: now };
    progress.seenSeq = state.seenSeq;
    if (state.activeAt > 0 && state.activeAt !== state.recordedActiveAt) {
      progress.activeAt = state.activeAt;
      state.recordedActiveAt = state.activeAt;
    } else if (state.idleToRecord) {
      progress.activeAt = null;
    }
    state.idleToRecord = false;
    return progress;
  }

  /** Replays the feed after `after`, a batch at a time; the client asks again while `more` is set. */
  private async resume(state: StationState, endpoint: UdpEndpoint, after: number): Promise<void> {
    if (endpoint.resuming) return; // one at a time per device; the client asks again on `more`
    endpoint.resuming = true;
    try {
      const missed = await this.feed.read(state.userId, after, RESUME_BATCH + 1);
      const more = missed.length > RESUME_BATCH;
      const batch = missed.slice(0, RESUME_BATCH);
      if (state.endpoint !== endpoint) return;
      for (const notification of batch) this.push(endpoint, notification.seq, JSON.stringify(toFrame(notification)));
      const through = batch.length > 0 ? batch[batch.length - 1].seq : after;
      this.sendJson(state, endpoint, 'push', { type: 'resumed', after, through, more });
    } finally {
      endpoint.resuming = false;
    }
  }

  /**
   * Sends a push and keeps it until acknowledged, retrying on the documented schedule (an
   * endpoint's deliver calls it). A frame too large for one datagram goes as a fetch signal,
   * built from `notification` when given (else from the frame's text).
   */
  push(endpoint: UdpEndpoint, seq: number, frame: string, notification?: Notification): void {
    let payload = Buffer.from(frame);
    if (payload.length > MAX_PAYLOAD_BYTES) {
      payload = Buffer.from(JSON.stringify(fetchSignal(notification ? toFrame(notification) : JSON.parse(frame))));
    }
    const previous = endpoint.pending.get(seq);
    if (previous) {
      // Sent again by a resume: the retransmission schedule starts over.
      clearTimeout(previous.timer);
      endpoint.pending.delete(seq);
      this.metrics.udpPending.dec();
    }
    if (endpoint.pending.size >= MAX_PENDING_PER_ENDPOINT) {
      const [oldestSeq, oldest] = endpoint.pending.entries().next().value as [number, PendingPush];
      clearTimeout(oldest.timer);
      endpoint.pending.delete(oldestSeq);
      this.metrics.udpPending.dec();
      this.metrics.udpGaveUp.inc();
    }
    if (endpoint.deliveredSeq === undefined || seq > endpoint.deliveredSeq) endpoint.deliveredSeq = seq;
    const pending = new PendingPush(endpoint, seq, payload);
    endpoint.pending.set(seq, pending);
    this.metrics.udpPending.inc();
    this.transmit(pending);
  }

  private transmit(pending: PendingPush): void {
    const endpoint = pending.endpoint;
    if (endpoint.state.endpoint !== endpoint || endpoint.pending.get(pending.seq) !== pending) return;
    if (this.forgetIfSilent(endpoint)) return;
    if (pending.attempt > 0) this.metrics.udpRetransmits.inc();
    this.send(endpoint.state, endpoint, DatagramType.push, pending.payload);
    this.metrics.framesSent.inc({ channel: 'udp' });
    const delay = RETRANSMIT_DELAYS_MS[pending.attempt];
    pending.attempt++;
    if (delay === undefined) {
      // Given up: the device learns of it by resuming from its last sequence.
      pending.timer = setTimeout(this.onGaveUp, RETRANSMIT_DELAYS_MS.at(-1), pending).unref();
    } else {
      pending.timer = setTimeout(this.onRetransmitDue, delay, pending).unref();
    }
  }

  private settle(endpoint: UdpEndpoint, seq: number, acknowledged: boolean): void {
    const pending = endpoint.pending.get(seq);
    if (!pending) return;
    clearTimeout(pending.timer);
    endpoint.pending.delete(seq);
    this.metrics.udpPending.dec();
    if (!acknowledged) this.metrics.udpGaveUp.inc();
  }

  private send(state: StationState, endpoint: UdpEndpoint, type: number, payload: Buffer): void {
    const bytes = encodeRaw(state.secret, type, state.station, this.clock.next(), payload);
    this.socket.send(bytes, endpoint.port, endpoint.address, (error) => {
      if (error && !this.closed) this.log.debug({ err: error, station: state.station }, 'UDP send failed');
    });
  }

  private sendJson(state: StationState, endpoint: UdpEndpoint, type: 'welcome' | 'push', body: Record<string, unknown>): void {
    const bytes = encodeDatagram(state.secret, { type, station: state.station, counter: this.clock.next(), payload: body });
    this.socket.send(bytes, endpoint.port, endpoint.address);
  }

  private forget(state: StationState, why: string): void {
    const endpoint = state.endpoint;
    if (!endpoint) return;
    state.endpoint = undefined;
    clearTimeout(endpoint.silence);
    // A device without a bound endpoint is not in use.
    if (state.activeAt > 0 || state.recordedActiveAt > 0) {
      this.becameIdle(state);
      if (!this.closed) this.scheduleAckFlush(state);
    }
    this.hub.remove(endpoint);
    this.metrics.liveConnections.dec({ channel: 'udp' });
    for (const seq of [...endpoint.pending.keys()]) this.settle(endpoint, seq, true);
    this.log.debug({ station: state.station, why }, 'UDP endpoint forgotten');
  }

  private disconnect(station: string, reason: string): void {
    const state = this.stations.get(station);
    if (!state) return;
    this.forget(state, reason);
    this.stations.delete(station);
  }

  /**
   * Forgets the endpoint if its timeout has passed since the last keep-alive; true when it
   * did. Its timer does this on time; a send checks too, as a busy event loop runs timers late.
   */
  forgetIfSilent(endpoint: UdpEndpoint): boolean {
    if (Date.now() - endpoint.lastHeardAt < this.config.udpEndpointTimeoutMs) return false;
    if (endpoint.state.endpoint === endpoint) {
      this.forget(endpoint.state, 'silent');
      this.metrics.udpEndpointsForgotten.inc();
    }
    return true;
  }
}
