import http2 from 'node:http2';
import { EventEmitter } from 'node:events';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { decodeProtectedHeader, importSPKI, jwtVerify, type CryptoKey } from 'jose';
import { generate } from 'selfsigned';

/*
 * A test double of the APNs provider API (HTTP/2 over TLS, token auth) that answers the
 * way Apple documents: it verifies the ES256 provider token against its key, the required
 * headers and the 4 KB payload limit, knows good, unregistered and bad device tokens, and
 * can be told to refuse (429/500/503), hold answers, or send GOAWAY.
 */

// APNs: an iat older than an hour is rejected with ExpiredProviderToken.
const TOKEN_MAX_AGE_S = 3600;
// APNs: the provider token may change at most every 20 minutes on a connection.
const TOKEN_MIN_REFRESH_S = 20 * 60;
const MAX_PAYLOAD_BYTES = 4096;
const PUSH_TYPES = new Set([
  'alert',
  'background',
  'location',
  'voip',
  'complication',
  'fileprovider',
  'mdm',
  'liveactivity',
  'pushtotalk',
]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DEVICE_TOKEN = /^[0-9a-f]{64}$/i;

export interface ApnsPushRecord {
  token: string;
  apnsId: string;
  topic: string;
  pushType: string;
  priority: number;
  expiration: number;
  collapseId?: string;
  payload: Record<string, any>;
  at: number;
}

export interface InjectedFailure {
  status: 429 | 500 | 503 | 400 | 403 | 410 | 413;
  reason: string;
  /** Retry-After header value in seconds. */
  retryAfter?: number;
  /** Only for this device token; any token when unset. */
  token?: string;
  /** How many requests get this answer (1 when unset). */
  times?: number;
}

export interface ApnsMockOptions {
  /** 127.0.0.1 unless given; only loopback addresses are allowed. */
  host?: string;
  port?: number;
  keyId?: string;
  teamId?: string;
  topic?: string;
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients. */
  maxConcurrentStreams?: number;
  /** Keep every accepted push in `pushes` (turn off for load runs; counts are always kept). */
  record?: boolean;
}

export interface ApnsMock {
  url: string;
  port: number;
  /** The double's TLS certificate, to trust as a CA (HERALD_CA_FILE). */
  caPem: string;
  /** The provider's signing key (the .p8 file Apple hands out), PKCS#8 PEM. */
  keyPem: string;
  publicKeyPem: string;
  keyId: string;
  teamId: string;
  topic: string;
  /** Accepted pushes, in order (when recording). */
  pushes: ApnsPushRecord[];
  /** Every request answered, by status. */
  answers: Map<number, number>;
  /** Accepted pushes (200). */
  accepted: number;
  /** Provider tokens verified by signature (each once per connection). */
  tokenVerifications: number;
  /** The most concurrent streams seen on one connection. */
  peakStreams: number;
  connections: number;
  events: EventEmitter;
  /** Marks a device token as no longer valid: 410 Unregistered with this timestamp. */
  unregister(token: string, at?: number): void;
  /** The next requests get this answer instead. */
  failNext(failure: InjectedFailure): void;
  /** Park requests unanswered until release() (they are not accepted until answered). */
  hold(): void;
  /** Answer the parked requests normally and stop holding. */
  release(): void;
  held(): number;
  /** Sends GOAWAY on every open connection (with an APNs reason as debug data) and closes them. */
  goaway(reason?: string): void;
  pushesTo(token: string): ApnsPushRecord[];
  close(): Promise<void>;
}

interface Held {
  stream: http2.ServerHttp2Stream;
  answer: () => void;
}

export async function startApnsMock(options: ApnsMockOptions = {}): Promise<ApnsMock> {
  const host = options.host ?? '127.0.0.1';
  if (host !== '127.0.0.1' && host !== '::1') throw new Error('the APNs double listens on loopback only');
  const keyId = options.keyId ?? 'ABC123DEFG';
  const teamId = options.teamId ?? 'DEF123GHIJ';
  const topic = options.topic ?? 'org.example.herald';
  const record = options.record ?? true;

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const verifyKey: CryptoKey = await importSPKI(publicKeyPem, 'ES256');
  const tls = await generate([{ name: 'commonName', value: 'Herald APNs test double' }], {
    keyType: 'ec',
    curve: 'P-256',
    notAfterDate: new Date(Date.now() + 24 * 3600 * 1000),
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });

  const unregistered = new Map<string, number>();
  const failures: InjectedFailure[] = [];
  const heldRequests: Held[] = [];
  let holding = false;
  const sessions = new Set<http2.ServerHttp2Session>();
  const events = new EventEmitter();

  /** Per connection: provider tokens already verified, with their iat, and when the token last changed. */
  const verified = new WeakMap<http2.Http2Session, { tokens: Map<string, number>; current?: string; changedAt: number }>();

  const mock: ApnsMock = {
    url: '',
    port: 0,
    caPem: tls.cert,
    keyPem,
    publicKeyPem,
    keyId,
    teamId,
    topic,
    pushes: [],
    answers: new Map(),
    accepted: 0,
    tokenVerifications: 0,
    peakStreams: 0,
    connections: 0,
    events,
    unregister(token, at = Date.now()) {
      unregistered.set(token.toLowerCase(), at);
    },
    failNext(failure) {
      failures.push({ ...failure, times: failure.times ?? 1 });
    },
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const h of heldRequests.splice(0)) if (!h.stream.closed) h.answer();
    },
    held: () => heldRequests.filter((h) => !h.stream.closed).length,
    goaway(reason = 'Shutdown') {
      const debug = Buffer.from(JSON.stringify({ reason }));
      for (const session of sessions) {
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, undefined, debug);
        session.close();
      }
    },
    pushesTo: (token) => mock.pushes.filter((p) => p.token === token.toLowerCase()),
    async close() {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  function answer(
    stream: http2.ServerHttp2Stream,
    status: number,
    body?: Record<string, unknown>,
    headers: http2.OutgoingHttpHeaders = {},
  ) {
    if (stream.closed || stream.destroyed) return;
    mock.answers.set(status, (mock.answers.get(status) ?? 0) + 1);
    const apnsId = (stream as unknown as { apnsId: string }).apnsId;
    if (body) {
      stream.respond({ ':status': status, 'apns-id': apnsId, 'content-type': 'application/json', ...headers });
      stream.end(JSON.stringify(body));
    } else {
      stream.respond({ ':status': status, 'apns-id': apnsId, ...headers }, { endStream: true });
    }
  }

  async function checkProviderToken(session: http2.Http2Session, authorization: string | undefined): Promise<string | undefined> {
    if (!authorization || !authorization.toLowerCase().startsWith('bearer ')) return 'MissingProviderToken';
    const jwt = authorization.slice(7).trim();
    const state = verified.get(session)!;
    let iat = state.tokens.get(jwt);
    if (iat === undefined) {
      try {
        const header = decodeProtectedHeader(jwt);
        if (header.alg !== 'ES256') return 'InvalidProviderToken';
        if (header.kid !== keyId) return 'InvalidProviderToken';
        mock.tokenVerifications++;
        const { payload } = await jwtVerify(jwt, verifyKey, { algorithms: ['ES256'] });
        if (payload.iss !== teamId) return 'InvalidProviderToken';
        if (typeof payload.iat !== 'number') return 'InvalidProviderToken';
        iat = payload.iat;
      } catch {
        return 'InvalidProviderToken';
      }
      const now = Date.now() / 1000;
      if (state.current !== undefined && state.current !== jwt && now - state.changedAt < TOKEN_MIN_REFRESH_S) {
        return 'TooManyProviderTokenUpdates';
      }
      state.tokens.set(jwt, iat);
      state.current = jwt;
      state.changedAt = now;
    }
    if (Date.now() / 1000 - iat > TOKEN_MAX_AGE_S) return 'ExpiredProviderToken';
    return undefined;
  }

  const statusOf: Record<string, number> = {
    MissingProviderToken: 403,
    InvalidProviderToken: 403,
    ExpiredProviderToken: 403,
    TooManyProviderTokenUpdates: 429,
  };

  async function handle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer) {
    const session = stream.session!;
    const given = headers['apns-id'];
    (stream as unknown as { apnsId: string }).apnsId = typeof given === 'string' && UUID.test(given) ? given.toLowerCase() : randomUUID();
    const path = String(headers[':path'] ?? '');
    if (headers[':method'] !== 'POST') return answer(stream, 405, { reason: 'MethodNotAllowed' });
    const match = /^\/3\/device\/([^/?]*)$/.exec(path);
    if (!match) return answer(stream, 404, { reason: 'BadPath' });
    const token = match[1].toLowerCase();
    const authProblem = await checkProviderToken(session, headers.authorization as string | undefined);
    if (authProblem) return answer(stream, statusOf[authProblem], { reason: authProblem });
    if (token === '') return answer(stream, 400, { reason: 'MissingDeviceToken' });
    if (typeof given === 'string' && !UUID.test(given)) return answer(stream, 400, { reason: 'BadMessageId' });
    const topicHeader = headers['apns-topic'];
    if (typeof topicHeader !== 'string' || topicHeader === '') return answer(stream, 400, { reason: 'MissingTopic' });
    if (topicHeader !== topic) return answer(stream, 400, { reason: 'TopicDisallowed' });
    const pushType = headers['apns-push-type'];
    if (typeof pushType !== 'string' || !PUSH_TYPES.has(pushType)) return answer(stream, 400, { reason: 'InvalidPushType' });
    const priority = headers['apns-priority'] === undefined ? 10 : Number(headers['apns-priority']);
    if (priority !== 10 && priority !== 5 && priority !== 1) return answer(stream, 400, { reason: 'BadPriority' });
    // APNs: background pushes must have priority 5.
    if (pushType === 'background' && priority === 10) return answer(stream, 400, { reason: 'BadPriority' });
    const expirationHeader = headers['apns-expiration'];
    const expiration = expirationHeader === undefined ? 0 : Number(expirationHeader);
    if (!Number.isInteger(expiration) || expiration < 0) return answer(stream, 400, { reason: 'BadExpirationDate' });
    const collapseId = headers['apns-collapse-id'] as string | undefined;
    if (collapseId !== undefined && Buffer.byteLength(collapseId) > 64) return answer(stream, 400, { reason: 'BadCollapseId' });
    if (body.length === 0) return answer(stream, 400, { reason: 'PayloadEmpty' });
    if (body.length > MAX_PAYLOAD_BYTES) return answer(stream, 413, { reason: 'PayloadTooLarge' });
    let payload: Record<string, any>;
    try {
      payload = JSON.parse(body.toString('utf8'));
      if (typeof payload !== 'object' || payload === null || typeof payload.aps !== 'object') throw new Error('no aps');
    } catch {
      return answer(stream, 400, { reason: 'PayloadEmpty' });
    }
    if (!DEVICE_TOKEN.test(token)) return answer(stream, 400, { reason: 'BadDeviceToken' });
    const gone = unregistered.get(token);
    if (gone !== undefined) return answer(stream, 410, { reason: 'Unregistered', timestamp: gone });

    const failureIndex = failures.findIndex((f) => !f.token || f.token.toLowerCase() === token);
    if (failureIndex >= 0) {
      const failure = failures[failureIndex];
      failure.times!--;
      if (failure.times! <= 0) failures.splice(failureIndex, 1);
      events.emit('refused', { token, status: failure.status, reason: failure.reason, at: Date.now() });
      return answer(
        stream,
        failure.status,
        { reason: failure.reason },
        failure.retryAfter !== undefined ? { 'retry-after': String(failure.retryAfter) } : {},
      );
    }

    const accept = () => {
      if (stream.closed || stream.destroyed) return;
      const apnsId = (stream as unknown as { apnsId: string }).apnsId;
      const push: ApnsPushRecord = {
        token,
        apnsId,
        topic: topicHeader,
        pushType,
        priority,
        expiration,
        collapseId,
        payload,
        at: Date.now(),
      };
      answer(stream, 200);
      mock.accepted++;
      if (record) mock.pushes.push(push);
      events.emit('push', push);
    };
    if (holding) {
      heldRequests.push({ stream, answer: accept });
      events.emit('held', mock.held());
    } else accept();
  }

  const server = http2.createSecureServer({
    cert: tls.cert,
    key: tls.private,
    settings: { maxConcurrentStreams: options.maxConcurrentStreams ?? 1000 },
  });
  server.on('session', (session) => {
    sessions.add(session);
    mock.connections++;
    verified.set(session, { tokens: new Map(), changedAt: 0 });
    session.on('close', () => sessions.delete(session));
    session.on('error', () => {});
  });
  const openStreams = new WeakMap<http2.Http2Session, number>();
  server.on('stream', (stream, headers) => {
    const session = stream.session!;
    const open = (openStreams.get(session) ?? 0) + 1;
    openStreams.set(session, open);
    if (open > mock.peakStreams) mock.peakStreams = open;
    stream.on('close', () => openStreams.set(session, (openStreams.get(session) ?? 1) - 1));
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Keep a little more than the limit, enough to tell that it was exceeded.
      if (size <= MAX_PAYLOAD_BYTES + 1) chunks.push(chunk);
    });
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      handle(stream, headers, size > body.length ? Buffer.alloc(size) : body).catch(() =>
        answer(stream, 500, { reason: 'InternalServerError' }),
      );
    });
    stream.on('error', () => {});
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  mock.port = (server.address() as AddressInfo).port;
  mock.url = `https://${host.includes(':') ? `[${host}]` : host}:${mock.port}`;
  return mock;
}
