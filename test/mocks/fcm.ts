import http2 from 'node:http2';
import { EventEmitter } from 'node:events';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { importSPKI, jwtVerify, type CryptoKey } from 'jose';
import { generate } from 'selfsigned';

/*
 * A test double of Firebase Cloud Messaging HTTP v1 and of Google's OAuth token endpoint.
 * The token endpoint verifies the RS256 JWT-bearer assertion against the test service
 * account's public key; messages:send checks the bearer access token, the message shape
 * (string-only data), knows unregistered tokens and can be told to answer any FCM error.
 * HTTP/2 over TLS, with HTTP/1.1 allowed as Google's front ends do.
 */

const MESSAGING_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export type FcmErrorCode =
  | 'UNSPECIFIED_ERROR'
  | 'INVALID_ARGUMENT'
  | 'UNREGISTERED'
  | 'SENDER_ID_MISMATCH'
  | 'QUOTA_EXCEEDED'
  | 'UNAVAILABLE'
  | 'INTERNAL'
  | 'THIRD_PARTY_AUTH_ERROR';

// FCM: the HTTP status and google.rpc status that go with each error code.
const ERROR_STATUS: Record<FcmErrorCode, [number, string]> = {
  UNSPECIFIED_ERROR: [400, 'INVALID_ARGUMENT'],
  INVALID_ARGUMENT: [400, 'INVALID_ARGUMENT'],
  UNREGISTERED: [404, 'NOT_FOUND'],
  SENDER_ID_MISMATCH: [403, 'PERMISSION_DENIED'],
  QUOTA_EXCEEDED: [429, 'RESOURCE_EXHAUSTED'],
  UNAVAILABLE: [503, 'UNAVAILABLE'],
  INTERNAL: [500, 'INTERNAL'],
  THIRD_PARTY_AUTH_ERROR: [401, 'UNAUTHENTICATED'],
};

export interface FcmMessageRecord {
  token: string;
  message: Record<string, any>;
  at: number;
}

export interface FcmMockOptions {
  host?: string;
  projectId?: string;
  /** expires_in of issued access tokens, seconds. */
  accessTokenLifetime?: number;
}

export interface FcmMock {
  url: string;
  caPem: string;
  projectId: string;
  /** The service-account JSON to hand to Herald (its token_uri points at this double). */
  serviceAccount: Record<string, string>;
  messages: FcmMessageRecord[];
  /** Access tokens issued by the token endpoint. */
  tokensIssued: number;
  /** HTTP/2 connections opened by clients so far, and messages:send requests that came over HTTP/1.1. */
  http2Sessions: number;
  http1Sends: number;
  /** The most messages:send requests open at once. */
  peakSends: number;
  events: EventEmitter;
  unregister(token: string): void;
  /** The next sends get this error (optionally only for one registration token). */
  failNext(failure: { errorCode: FcmErrorCode; retryAfter?: number; token?: string; times?: number; field?: string }): void;
  /** Revokes every access token issued so far (the next send gets 401 UNAUTHENTICATED). */
  revokeAccessTokens(): void;
  /** Drops every client connection, as a front end that restarts does. */
  dropConnections(): void;
  /** Parks messages:send requests unanswered until release() (they are not recorded until answered). */
  hold(): void;
  /** Answers the parked requests normally and stops holding. */
  release(): void;
  /** Parked requests whose client is still waiting. */
  held(): number;
  messagesTo(token: string): FcmMessageRecord[];
  close(): Promise<void>;
}

export async function startFcmMock(options: FcmMockOptions = {}): Promise<FcmMock> {
  const host = options.host ?? '127.0.0.1';
  if (host !== '127.0.0.1' && host !== '::1') throw new Error('the FCM double listens on loopback only');
  const projectId = options.projectId ?? 'herald-test';
  const lifetime = options.accessTokenLifetime ?? 3600;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const verifyKey: CryptoKey = await importSPKI(publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'RS256');
  const clientEmail = `herald@${projectId}.iam.gserviceaccount.com`;
  const tls = await generate([{ name: 'commonName', value: 'Herald FCM test double' }], {
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

  const accessTokens = new Map<string, number>();
  const unregistered = new Set<string>();
  const failures: Array<{ errorCode: FcmErrorCode; retryAfter?: number; token?: string; times: number; field?: string }> = [];
  const events = new EventEmitter();
  const heldSends: Array<{ dropped: boolean; answer: () => void }> = [];
  let holding = false;

  const server = http2.createSecureServer({ cert: tls.cert, key: tls.private, allowHTTP1: true });
  const sessions = new Set<http2.Http2Session>();
  // HTTP/1.1 clients (keep-alive agents) hold sockets that are not HTTP/2 sessions.
  const sockets = new Set<import('node:tls').TLSSocket>();
  server.on('secureConnection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('session', (session) => {
    mock.http2Sessions++;
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });

  const mock: FcmMock = {
    url: '',
    caPem: tls.cert,
    projectId,
    serviceAccount: {},
    messages: [],
    tokensIssued: 0,
    http2Sessions: 0,
    http1Sends: 0,
    peakSends: 0,
    events,
    unregister: (token) => void unregistered.add(token),
    failNext: (failure) => void failures.push({ ...failure, times: failure.times ?? 1 }),
    revokeAccessTokens: () => accessTokens.clear(),
    dropConnections() {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
    },
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const held of heldSends.splice(0)) if (!held.dropped) held.answer();
    },
    held: () => heldSends.filter((held) => !held.dropped).length,
    messagesTo: (token) => mock.messages.filter((m) => m.token === token),
    async close() {
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  type Reply = (status: number, body: unknown, headers?: Record<string, string>) => void;

  function fcmError(reply: Reply, errorCode: FcmErrorCode, message: string, extra: { retryAfter?: number; field?: string } = {}) {
    const [status, rpcStatus] = ERROR_STATUS[errorCode];
    const details: unknown[] = [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }];
    if (extra.field) {
      details.push({
        '@type': 'type.googleapis.com/google.rpc.BadRequest',
        fieldViolations: [{ field: extra.field, description: message }],
      });
    }
    reply(
      status,
      { error: { code: status, message, status: rpcStatus, details } },
      extra.retryAfter !== undefined ? { 'retry-after': String(extra.retryAfter) } : {},
    );
  }

  async function tokenEndpoint(body: string, reply: Reply) {
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== GRANT_TYPE) {
      return reply(400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type' });
    }
    const assertion = form.get('assertion');
    if (!assertion) return reply(400, { error: 'invalid_request', error_description: 'Missing required parameter: assertion' });
    try {
      const { payload, protectedHeader } = await jwtVerify(assertion, verifyKey, {
        algorithms: ['RS256'],
        issuer: clientEmail,
        audience: mock.serviceAccount.token_uri,
      });
      if (protectedHeader.kid !== undefined && protectedHeader.kid !== mock.serviceAccount.private_key_id) throw new Error('unknown kid');
      if (payload.scope !== MESSAGING_SCOPE) throw new Error('scope');
      // Google OAuth: exp at most one hour after iat.
      if (typeof payload.iat !== 'number' || typeof payload.exp !== 'number' || payload.exp - payload.iat > 3600)
        throw new Error('lifetime');
    } catch (error) {
      return reply(400, { error: 'invalid_grant', error_description: `Invalid JWT Signature or claims: ${(error as Error).message}` });
    }
    const token = `ya29.${randomBytes(24).toString('base64url')}`;
    accessTokens.set(token, Date.now() + lifetime * 1000);
    mock.tokensIssued++;
    reply(200, { access_token: token, expires_in: lifetime, token_type: 'Bearer' });
  }

  function send(authorization: string | undefined, body: string, reply: Reply) {
    const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
    const expiresAt = bearer ? accessTokens.get(bearer) : undefined;
    if (!expiresAt || expiresAt < Date.now()) {
      return reply(401, {
        error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' },
      });
    }
    let message: Record<string, any>;
    try {
      message = (JSON.parse(body) as { message: Record<string, any> }).message;
      if (typeof message !== 'object' || message === null) throw new Error();
    } catch {
      return fcmError(reply, 'INVALID_ARGUMENT', 'Invalid JSON payload received.');
    }
    const token = message.token;
    if (typeof token !== 'string' || token === '') {
      return fcmError(reply, 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token', {
        field: 'message.token',
      });
    }
    if (message.data !== undefined) {
      for (const [key, value] of Object.entries(message.data as Record<string, unknown>)) {
        if (typeof value !== 'string') {
          return fcmError(reply, 'INVALID_ARGUMENT', `Invalid value at 'message.data[${key}].value' (TYPE_STRING)`, {
            field: `message.data[${key}].value`,
          });
        }
      }
    }
    const priority = message.android?.priority;
    if (priority !== undefined && priority !== 'high' && priority !== 'normal' && priority !== 'HIGH' && priority !== 'NORMAL') {
      return fcmError(reply, 'INVALID_ARGUMENT', 'Invalid value at message.android.priority', { field: 'message.android.priority' });
    }
    if (unregistered.has(token)) return fcmError(reply, 'UNREGISTERED', 'Requested entity was not found.');
    const index = failures.findIndex((f) => !f.token || f.token === token);
    if (index >= 0) {
      const failure = failures[index];
      if (--failure.times <= 0) failures.splice(index, 1);
      events.emit('refused', { token, errorCode: failure.errorCode, at: Date.now() });
      return fcmError(reply, failure.errorCode, `injected ${failure.errorCode}`, failure);
    }
    const record: FcmMessageRecord = { token, message, at: Date.now() };
    mock.messages.push(record);
    events.emit('message', record);
    reply(200, { name: `projects/${projectId}/messages/${randomBytes(8).toString('hex')}` });
  }

  let openSends = 0;
  server.on('request', (request, response) => {
    const isSend = request.url?.endsWith('/messages:send') ?? false;
    if (isSend) {
      if (request.httpVersionMajor === 1) mock.http1Sends++;
      openSends++;
      if (openSends > mock.peakSends) mock.peakSends = openSends;
      response.once('close', () => openSends--);
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const reply: Reply = (status, value, headers = {}) => {
        response.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
        response.end(JSON.stringify(value));
      };
      const url = request.url ?? '';
      if (request.method === 'POST' && url === '/token') return void tokenEndpoint(body, reply);
      if (request.method === 'POST' && url === `/v1/projects/${projectId}/messages:send`) {
        const answer = () => send(request.headers.authorization, body, reply);
        if (holding) {
          const held = { dropped: false, answer };
          // The client went away (its connection was lost): nothing to answer, nothing recorded.
          response.once('close', () => (held.dropped = true));
          return void heldSends.push(held);
        }
        return answer();
      }
      if (/^\/v1\/projects\/[^/]+\/messages:send$/.test(url)) {
        return fcmError(reply, 'SENDER_ID_MISMATCH', 'SenderId mismatch');
      }
      reply(404, { error: { code: 404, message: 'Not Found', status: 'NOT_FOUND' } });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  mock.url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  mock.serviceAccount = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: randomBytes(20).toString('hex'),
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    client_email: clientEmail,
    client_id: '100000000000000000000',
    token_uri: `${mock.url}/token`,
  };
  return mock;
}
