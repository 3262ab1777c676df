import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { Http2Origin } from '../http2-origin.ts';
import { publicOnlyLookup } from './public-endpoints.ts';

const REQUEST_TIMEOUT_MS = 30_000;
/** Concurrent HTTP/1.1 connections per push service origin. */
const MAX_SOCKETS = 64;
/**
 * Origins whose protocol is remembered at most. Push services are few (FCM, Mozilla's
 * autopush, Apple's, Microsoft's); past this many, an origin is spoken to over HTTP/1.1
 * without asking, so endpoints on many made-up origins cannot pin as many open connections.
 */
const MAX_KNOWN_ORIGINS = 100;

export interface PushServiceAnswer {
  status: number;
  body: string;
  retryAfter?: string | string[];
}

export interface PushServiceOptions {
  ca?: string;
  log?: Logger;
  /** Allows endpoints on loopback, private and link-local addresses (HERALD_WEBPUSH_ALLOW_PRIVATE). */
  allowPrivateEndpoints?: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * The connections to the push services, each origin in the protocol it offers. The first
 * push to an origin opens a TLS connection offering h2 and http/1.1 (ALPN, RFC 7301): when
 * the origin picks h2, as FCM's and Mozilla's push services do, every push to it is then a
 * stream of that one HTTP/2 connection (RFC 8030 §4 pushes over HTTP/2); otherwise pushes go
 * over the keep-alive HTTP/1.1 agent, up to 64 connections per origin.
 *
 * HERALD_NO_WEBPUSH_HTTP2=1 sends every push over HTTP/1.1.
 */
export class PushServiceConnections {
  private readonly agent: https.Agent;
  private readonly lookup: net.LookupFunction | undefined;
  /** Per origin: its HTTP/2 connection, or undefined when it speaks HTTP/1.1 only. */
  private readonly origins: Map<string, Promise<Http2Origin | undefined>> | undefined;

  constructor(private readonly options: PushServiceOptions) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...(options.ca ? { ca: options.ca } : {}) });
    this.lookup = options.allowPrivateEndpoints ? undefined : publicOnlyLookup;
    this.origins = (options.env ?? process.env).HERALD_NO_WEBPUSH_HTTP2 === '1' ? undefined : new Map();
  }

  /** POSTs a push and reads the start of the answer; rejects when the push service cannot be reached. */
  async post(url: URL, headers: Record<string, string | number>, body: Buffer): Promise<PushServiceAnswer> {
    const origin = await this.http2Origin(url);
    if (!origin) return this.postHttp1(url, headers, body);
    const answer = await origin.postAndWait(url.pathname + url.search, headers, body);
    return { status: answer.status, body: answer.body, retryAfter: answer.headers['retry-after'] };
  }

  private http2Origin(url: URL): Promise<Http2Origin | undefined> | undefined {
    if (!this.origins) return undefined;
    let known = this.origins.get(url.origin);
    if (!known) {
      if (this.origins.size >= MAX_KNOWN_ORIGINS) return undefined;
      known = this.negotiate(url);
      // An origin that could not be reached is asked again on its next push.
      known.catch(() => this.origins?.delete(url.origin));
      this.origins.set(url.origin, known);
    }
    return known;
  }

  /** Connects offering h2 and http/1.1; an origin that picks h2 keeps this connection for its HTTP/2 session. */
  private negotiate(url: URL): Promise<Http2Origin | undefined> {
    const { ca, log } = this.options;
    const host = url.hostname.replace(/^\[|\]$/g, '');
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host,
        port: Number(url.port) || 443,
        // RFC 6066 §3: no SNI for an IP address.
        ...(net.isIP(host) ? {} : { servername: host }),
        ALPNProtocols: ['h2', 'http/1.1'],
        minVersion: 'TLSv1.2',
        ...(ca ? { ca } : {}),
        ...(this.lookup ? { lookup: this.lookup } : {}),
      });
      socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy(new Error(`no TLS handshake within ${REQUEST_TIMEOUT_MS} ms`)));
      socket.once('error', reject);
      socket.once('secureConnect', () => {
        socket.setTimeout(0);
        socket.removeListener('error', reject);
        if (socket.alpnProtocol === 'h2') {
          const name = `Web Push ${url.origin}`;
          resolve(new Http2Origin(url.origin, { name, ca, log, lookup: this.lookup, socket }));
        } else {
          socket.on('error', () => {}).end();
          resolve(undefined);
        }
      });
    });
  }

  private postHttp1(url: URL, headers: Record<string, string | number>, body: Buffer) {
    return new Promise<PushServiceAnswer>((resolve, reject) => {
      const request = https.request(url, { method: 'POST', agent: this.agent, headers, lookup: this.lookup }, (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          // Only the start of an error body is kept for the reason.
          if (size < 1024) chunks.push(chunk);
          size += chunk.length;
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            retryAfter: response.headers['retry-after'],
          }),
        );
        response.on('error', reject);
      });
      request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      request.on('error', reject);
      request.end(body);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
    const origins = [...(this.origins?.values() ?? [])];
    this.origins?.clear();
    await Promise.all(
      origins.map((known) =>
        known.then(
          (origin) => origin?.close(),
          () => {},
        ),
      ),
    );
  }
}
