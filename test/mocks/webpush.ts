import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { generate } from 'selfsigned';

/*
 * A test double of a Web Push service (RFC 8030) over HTTPS on loopback, speaking HTTP/2 or
 * HTTP/1.1 as the client asks by ALPN (real push services — FCM's, Mozilla's — offer both;
 * RFC 8030 §4 recommends HTTP/2). It checks what a
 * real push service checks: TTL, Content-Encoding aes128gcm and the RFC 8188 header of the
 * body, Urgency and Topic when sent, and the VAPID Authorization (RFC 8292: an ES256 JWT
 * verified against k, aud = this origin, exp at most 24 h ahead, sub mailto: or https:).
 * It cannot read the payload: only the browser (the test) holds the subscription's private key.
 */

// RFC 8030 §7.2: a push service must accept payloads of at least 4096 octets; this one takes no more.
const MAX_BODY = 4096;
const URGENCIES = ['very-low', 'low', 'normal', 'high'];

export interface WebPushVapidClaims {
  aud: string;
  exp: number;
  sub: string;
  /** The k parameter: the application server's public key, base64url. */
  k: string;
}

type VapidKey = Awaited<ReturnType<typeof importJWK>>;

export interface WebPushRecord {
  endpoint: string;
  ttl: number;
  urgency?: string;
  topic?: string;
  /** The encrypted body exactly as received (salt ‖ rs ‖ idlen ‖ keyid ‖ records). */
  body: Buffer;
  vapid: WebPushVapidClaims;
  /** The HTTP version it came over: '2.0' or '1.1'. */
  httpVersion: string;
  at: number;
}

export interface WebPushFailure {
  status: number;
  retryAfter?: number;
  /** Only for this endpoint; any endpoint when unset. */
  endpoint?: string;
  times?: number;
}

export interface WebPushMock {
  /** https://127.0.0.1:<port>, the VAPID audience. */
  origin: string;
  caPem: string;
  /** HERALD_CA_FILE (this double's certificate), for startTestServer. */
  env: Record<string, string>;
  /** Accepted messages, in arrival order. */
  messages: WebPushRecord[];
  /** How many times each HTTP status was answered. */
  answers: Map<number, number>;
  /** TLS connections opened by clients so far. */
  connections: number;
  /** Emits 'refused' {endpoint, status, at} for every non-201 answer. */
  events: EventEmitter;
  /**
   * A new subscription endpoint, as the browser's pushManager.subscribe() would get it. Bound
   * to applicationServerKey when given: a push signed with another key gets 403.
   */
  subscribe(applicationServerKey?: string): string;
  /** The user revoked the subscription: 410 Gone from now on. */
  expire(endpoint: string): void;
  /** The next pushes get this answer. */
  failNext(failure: WebPushFailure): void;
  messagesTo(endpoint: string): WebPushRecord[];
  close(): Promise<void>;
}

export interface WebPushMockOptions {
  /** Offers only http/1.1 by ALPN, as a push service without HTTP/2 would. */
  http1Only?: boolean;
}

export async function startWebPushMock(options: WebPushMockOptions = {}): Promise<WebPushMock> {
  const host = '127.0.0.1';
  const tls = await generate([{ name: 'commonName', value: 'Herald Web Push test double' }], {
    keyType: 'ec',
    curve: 'P-256',
    notAfterDate: new Date(Date.now() + 24 * 3600 * 1000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  const subscriptions = new Map<string, { applicationServerKey?: string; gone: boolean }>();
  const failures: Array<WebPushFailure & { times: number }> = [];
  const events = new EventEmitter();
  const sockets = new Set<TLSSocket>();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-webpush-'));
  const caFile = path.join(dir, 'webpush-ca.pem');
  fs.writeFileSync(caFile, tls.cert);

  const mock: WebPushMock = {
    origin: '',
    caPem: tls.cert,
    // The double listens on loopback, which Herald refuses for user endpoints unless allowed.
    env: { HERALD_CA_FILE: caFile, HERALD_WEBPUSH_ALLOW_PRIVATE: '1' },
    messages: [],
    answers: new Map(),
    connections: 0,
    events,
    subscribe(applicationServerKey) {
      const id = randomBytes(24).toString('base64url');
      subscriptions.set(id, { applicationServerKey, gone: false });
      return `${mock.origin}/push/${id}`;
    },
    expire(endpoint) {
      const subscription = subscriptions.get(subscriptionId(endpoint));
      if (!subscription) throw new Error(`no subscription ${endpoint}`);
      subscription.gone = true;
    },
    failNext: (failure) => void failures.push({ ...failure, times: failure.times ?? 1 }),
    messagesTo: (endpoint) => mock.messages.filter((m) => m.endpoint === endpoint),
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };

  function subscriptionId(endpoint: string): string {
    return new URL(endpoint, mock.origin).pathname.replace(/^\/push\//, '');
  }

  /*
   * The application servers' public keys, imported once per k value. A push service keeps
   * the applicationServerKey a subscription was created with (RFC 8292 §3.2), so importing
   * the same key for every request is work a real one does not repeat either. The token is
   * still verified on every request, whoever signed it and however often it comes back.
   */
  const importedKeys = new Map<string, Promise<VapidKey>>();
  function vapidKey(k: string, point: Buffer): Promise<VapidKey> {
    let key = importedKeys.get(k);
    if (!key) {
      key = importJWK(
        { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
        'ES256',
      );
      // A k that does not import is not kept: each request with it gets its own 401.
      key.catch(() => importedKeys.delete(k));
      importedKeys.set(k, key);
    }
    return key;
  }

  /** RFC 8292 §3: Authorization: vapid t=<JWT>, k=<public key>. Returns the claims or why not. */
  async function verifyVapid(authorization: string | undefined): Promise<WebPushVapidClaims | string> {
    const match = /^vapid\s+(.+)$/i.exec(authorization ?? '');
    if (!match) return 'Authorization must use the vapid scheme';
    const params = new Map<string, string>();
    for (const part of match[1].split(',')) {
      const eq = part.indexOf('=');
      if (eq > 0) params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
    }
    const t = params.get('t');
    const k = params.get('k');
    if (!t || !k) return 'vapid needs t and k';
    const point = Buffer.from(k, 'base64url');
    if (point.length !== 65 || point[0] !== 4) return 'k is not an uncompressed P-256 point';
    try {
      if (decodeProtectedHeader(t).alg !== 'ES256') return 'the JWT must be ES256';
      const key = await vapidKey(k, point);
      const { payload } = await jwtVerify(t, key, { algorithms: ['ES256'], audience: mock.origin });
      const now = Math.floor(Date.now() / 1000);
      if (typeof payload.exp !== 'number') return 'the JWT has no exp';
      // RFC 8292 §2: exp no more than 24 hours from the time of the request.
      if (payload.exp > now + 24 * 3600) return 'exp is more than 24 hours ahead';
      if (typeof payload.sub !== 'string' || !/^(mailto:|https:)/.test(payload.sub)) return 'sub must be a mailto: or https: URI';
      return { aud: String(payload.aud), exp: payload.exp, sub: payload.sub, k };
    } catch (error) {
      return `the VAPID JWT does not verify: ${(error as Error).message}`;
    }
  }

  async function handle(
    request: import('node:http').IncomingMessage | http2.Http2ServerRequest,
    body: Buffer,
  ): Promise<{ status: number; text: string; headers?: Record<string, string> }> {
    const url = new URL(request.url ?? '/', mock.origin);
    if (request.method !== 'POST' || !url.pathname.startsWith('/push/')) return { status: 404, text: 'not a push endpoint' };
    const endpoint = `${mock.origin}${url.pathname}`;
    const subscription = subscriptions.get(subscriptionId(endpoint));
    if (!subscription) return { status: 404, text: 'no such subscription' };
    // RFC 8030 §5.2: TTL is required.
    const ttlHeader = request.headers.ttl;
    if (typeof ttlHeader !== 'string' || !/^\d{1,10}$/.test(ttlHeader))
      return { status: 400, text: 'TTL header missing or not a number of seconds' };
    const urgency = request.headers.urgency as string | undefined;
    if (urgency !== undefined && !URGENCIES.includes(urgency))
      return { status: 400, text: `Urgency must be one of ${URGENCIES.join(', ')}` };
    const topic = request.headers.topic as string | undefined;
    if (topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(topic))
      return { status: 400, text: 'Topic must be at most 32 base64url characters' };
    const vapid = await verifyVapid(request.headers.authorization);
    if (typeof vapid === 'string') return { status: 401, text: vapid };
    if (subscription.applicationServerKey && subscription.applicationServerKey !== vapid.k) {
      return { status: 403, text: 'the subscription was created for another applicationServerKey' };
    }
    if (request.headers['content-encoding'] !== 'aes128gcm') return { status: 400, text: 'Content-Encoding must be aes128gcm' };
    if (body.length > MAX_BODY) return { status: 413, text: `payload larger than ${MAX_BODY} octets` };
    // RFC 8188 §2.1 with RFC 8291 §4: salt(16) ‖ rs(4) ‖ idlen(1) = 65 ‖ keyid(65) ‖ at least one record.
    if (body.length < 21 + 65 + 17 || body[20] !== 65 || body.readUInt32BE(16) < 18) {
      return { status: 400, text: 'the body is not an aes128gcm message for Web Push' };
    }
    if (subscription.gone) return { status: 410, text: 'push subscription has unsubscribed or expired' };
    const index = failures.findIndex((f) => !f.endpoint || f.endpoint === endpoint);
    if (index >= 0) {
      const failure = failures[index];
      if (--failure.times <= 0) failures.splice(index, 1);
      return {
        status: failure.status,
        text: `injected ${failure.status}`,
        headers: failure.retryAfter !== undefined ? { 'retry-after': String(failure.retryAfter) } : undefined,
      };
    }
    mock.messages.push({ endpoint, ttl: Number(ttlHeader), urgency, topic, body, vapid, httpVersion: request.httpVersion, at: Date.now() });
    return { status: 201, text: '', headers: { location: `${mock.origin}/message/${randomBytes(12).toString('base64url')}` } };
  }

  function onRequest(
    request: import('node:http').IncomingMessage | http2.Http2ServerRequest,
    response: import('node:http').ServerResponse | http2.Http2ServerResponse,
  ): void {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void handle(request, Buffer.concat(chunks)).then((answer) => {
        mock.answers.set(answer.status, (mock.answers.get(answer.status) ?? 0) + 1);
        if (answer.status !== 201)
          events.emit('refused', { endpoint: `${mock.origin}${request.url}`, status: answer.status, at: Date.now() });
        response.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
        response.end(answer.text);
      });
    });
  }
  const serverOptions = { cert: tls.cert, key: tls.private };
  const server = options.http1Only
    ? https.createServer(serverOptions, onRequest)
    : http2.createSecureServer({ ...serverOptions, allowHTTP1: true }, onRequest);
  server.on('secureConnection', (socket: TLSSocket) => {
    mock.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  mock.origin = `https://${host}:${(server.address() as AddressInfo).port}`;
  return mock;
}
