import http2 from 'node:http2';
import type { Logger } from 'pino';
import { closeSession } from '../http2-origin.ts';

/**
 * Streams a connection carries at once at most, whatever the peer advertises (APNs: observed
 * 500–1,500; the advertised number is a ceiling, not a quota). Every stream in flight is
 * state the peer holds: against the APNs double on loopback, 1,000 streams in flight cost
 * the double 11–25 µs more CPU per push than 500 for the same requests, in two sets of 6 rounds
 * (bench/micro/apns-double-streams.ts). 500 streams keep one connection at 5,000 pushes/s
 * even at 100 ms round trips; beyond that HERALD_APNS_THREADS opens more connections.
 */
export const APNS_MAX_STREAMS = 500;
/** Ping a connection that has been idle this long, so a dead peer is noticed before the next push. */
export const IDLE_PING_MS = 60_000;
/** How long close() waits for open streams before it destroys the session. */
const CLOSE_GRACE_MS = 2000;

/** What a connection tells the channel that owns it. */
export interface ConnectionOwner {
  /** The peer's settings came (its stream limit may have grown): waiting pushes may go. */
  settingsChanged(): void;
  /** No new streams go here any more (GOAWAY, or the session closed): waiting pushes need another. */
  retired(connection: ApnsConnection): void;
}

/** One HTTP/2 connection to APNs and the count of streams it carries. */
export class ApnsConnection {
  /** Streams open on it. */
  active = 0;
  /** APNs: until a request with a valid token succeeds, only one stream is allowed. */
  confirmed = false;
  /** After GOAWAY no new streams go here. */
  draining = false;
  lastUsed = Date.now();

  private constructor(readonly session: http2.ClientHttp2Session) {}

  /** Connects to `url` (TLS 1.2 or later, trusting `ca` too); rejects when the connection fails. */
  static open(url: string, ca: string | undefined, log: Logger | undefined, owner: ConnectionOwner): Promise<ApnsConnection> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(url, {
        ...(ca ? { ca } : {}),
        // APNs: TLS 1.2 or later.
        minVersion: 'TLSv1.2',
      });
      const connection = new ApnsConnection(session);
      const retire = () => {
        connection.draining = true;
        owner.retired(connection);
      };
      session.once('connect', () => resolve(connection));
      session.on('remoteSettings', () => owner.settingsChanged());
      session.on('goaway', (code, _lastStreamId, opaqueData) => {
        // APNs: the reason may come as JSON in the GOAWAY's debug data.
        const why = opaqueData && opaqueData.length > 0 ? opaqueData.toString('utf8') : `code ${code}`;
        log?.warn({ why }, 'APNs sent GOAWAY; reconnecting');
        retire();
      });
      session.on('error', (error) => {
        log?.warn({ err: error }, 'APNs connection error');
        reject(error);
      });
      session.on('close', retire);
    });
  }

  /** True while new streams may go here. */
  get usable(): boolean {
    return !this.draining && !this.session.closed && !this.session.destroyed;
  }

  /** Streams allowed at once: one until the provider token is proven, then what the peer advertises (capped). */
  streamLimit(): number {
    if (!this.confirmed) return 1;
    const advertised = this.session.remoteSettings.maxConcurrentStreams ?? 100;
    return Math.max(1, Math.min(advertised, APNS_MAX_STREAMS));
  }

  /** Pings a connection idle for IDLE_PING_MS; one that does not answer is destroyed (and retired). */
  pingIfIdle(): void {
    if (this.active > 0 || Date.now() - this.lastUsed < IDLE_PING_MS) return;
    this.session.ping((error) => {
      if (error) this.session.destroy();
    });
  }

  /** Closes the session, letting open streams finish for up to two seconds. */
  close(): Promise<void> {
    return closeSession(this.session, CLOSE_GRACE_MS);
  }
}
