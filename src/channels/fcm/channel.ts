import fs from 'node:fs';
import https from 'node:https';
import { importPKCS8, SignJWT, type CryptoKey } from 'jose';
import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import type { Notification } from '../../model/notification.ts';
import { parseRetryAfter } from '../push-common.ts';
import { fcmMessage } from './payload.ts';
import type { PushChannel, PushTarget, SendOutcome } from '../../model/channel.ts';

/**
 * Firebase Cloud Messaging HTTP v1: an OAuth access token from the service account (RS256
 * JWT grant to the account's token_uri), then one POST per message.
 */

// Google OAuth: the assertion may live at most an hour.
const ASSERTION_LIFETIME_S = 3600;
/** Fetch a new access token this long before the old one expires. */
const ACCESS_TOKEN_MARGIN_MS = 5 * 60 * 1000;
const REQUEST_TIMEOUT_MS = 30_000;
const MESSAGING_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
/** Concurrent HTTPS connections to FCM; FCM has no batch endpoint any more. */
const MAX_SOCKETS = 64;

export interface ServiceAccount {
  project_id: string;
  private_key_id?: string;
  private_key: string;
  client_email: string;
  token_uri: string;
}

export function parseServiceAccount(text: string, source = 'the service account'): ServiceAccount {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source} is not JSON: ${(error as Error).message}`);
  }
  const account = value as Partial<ServiceAccount>;
  for (const field of ['project_id', 'private_key', 'client_email', 'token_uri'] as const) {
    if (typeof account[field] !== 'string' || account[field] === '') throw new Error(`${source} has no ${field}`);
  }
  if (!/^https:\/\//.test(account.token_uri!)) throw new Error(`${source}: token_uri must be an https:// URL`);
  if (!/^[a-z0-9-]{1,100}$/i.test(account.project_id!)) throw new Error(`${source}: project_id is not a project id`);
  return account as ServiceAccount;
}

/** The FCM error body: {"error":{code, message, status, details:[{@type, errorCode | fieldViolations}]}}. */
interface FcmErrorBody {
  error?: {
    code?: number;
    message?: string;
    status?: string;
    details?: Array<{ '@type'?: string; errorCode?: string; fieldViolations?: Array<{ field?: string; description?: string }> }>;
  };
}

export interface FcmAnswer {
  status: number;
  /** projects/<p>/messages/<id> on success. */
  name?: string;
  /** The FcmError errorCode, or the google.rpc status when there is none. */
  errorCode?: string;
  message?: string;
  /** Fields the request was refused for (INVALID_ARGUMENT). */
  fieldViolations?: string[];
  retryAfterMs?: number;
}

export function readFcmAnswer(status: number, bodyText: string, retryAfter?: string | string[]): FcmAnswer {
  const answer: FcmAnswer = { status, retryAfterMs: parseRetryAfter(retryAfter) };
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    if (status !== 200) answer.message = bodyText.slice(0, 200);
    return answer;
  }
  if (status === 200) {
    answer.name = (body as { name?: string }).name;
    return answer;
  }
  const error = (body as FcmErrorBody).error;
  answer.message = error?.message;
  const fcmDetail = error?.details?.find((d) => d['@type']?.endsWith('google.firebase.fcm.v1.FcmError'));
  answer.errorCode = fcmDetail?.errorCode ?? error?.status;
  answer.fieldViolations = error?.details?.flatMap((d) => d.fieldViolations ?? []).map((v) => v.field ?? '');
  return answer;
}

/** Turns an FCM answer into the outbox's vocabulary; every FCM error code lands on one outcome. */
export function fcmOutcome(answer: FcmAnswer): SendOutcome {
  const said = `${answer.status} ${answer.errorCode ?? ''}${answer.message ? ': ' + answer.message : ''}`.trim();
  if (answer.status === 200) return { kind: 'delivered', detail: `200 ${answer.name ?? ''}`.trim() };
  switch (answer.errorCode) {
    // FCM: the token is no longer valid, or belongs to another sender: drop it.
    case 'UNREGISTERED':
    case 'SENDER_ID_MISMATCH':
      return { kind: 'dead', reason: said };
    case 'INVALID_ARGUMENT':
      // FCM: only a violation on message.token means the token itself is bad.
      return answer.fieldViolations?.includes('message.token') ? { kind: 'dead', reason: said } : { kind: 'failed', reason: said };
    case 'QUOTA_EXCEEDED':
    case 'UNAVAILABLE':
    case 'INTERNAL':
      return { kind: 'retry', reason: said, afterMs: answer.retryAfterMs };
    case 'THIRD_PARTY_AUTH_ERROR':
    case 'UNSPECIFIED_ERROR':
      return { kind: 'failed', reason: said };
  }
  if (answer.status === 429 || answer.status >= 500) return { kind: 'retry', reason: said, afterMs: answer.retryAfterMs };
  return { kind: 'failed', reason: said };
}

export interface FcmOptions {
  account: ServiceAccount;
  /** Origin, e.g. https://fcm.googleapis.com */
  url: string;
  ca?: string;
  log?: Logger;
}

export class FcmChannel implements PushChannel {
  readonly provider = 'fcm' as const;
  private readonly agent: https.Agent;
  private readonly key: Promise<CryptoKey>;
  private accessToken?: Promise<{ token: string; expiresAt: number }>;
  private readonly sendUrl: URL;

  constructor(private readonly options: FcmOptions) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS, ...(options.ca ? { ca: options.ca } : {}) });
    this.key = importPKCS8(options.account.private_key, 'RS256');
    this.key.catch(() => {});
    this.sendUrl = new URL(`/v1/projects/${options.account.project_id}/messages:send`, options.url);
  }

  static async fromConfig(config: Config, log?: Logger): Promise<FcmChannel> {
    const fcm = config.fcm;
    if (!fcm) throw new Error('FCM is not configured');
    let text: string;
    try {
      text = fs.readFileSync(fcm.serviceAccountFile, 'utf8');
    } catch (error) {
      throw new Error(`HERALD_FCM_SERVICE_ACCOUNT ${fcm.serviceAccountFile} cannot be read: ${(error as Error).message}`);
    }
    const account = parseServiceAccount(text, `HERALD_FCM_SERVICE_ACCOUNT ${fcm.serviceAccountFile}`);
    const channel = new FcmChannel({
      account,
      url: fcm.url,
      ca: config.caFile ? fs.readFileSync(config.caFile, 'utf8') : undefined,
      log,
    });
    try {
      await channel.key;
    } catch (error) {
      throw new Error(`the private_key of ${fcm.serviceAccountFile} is not a PKCS#8 RSA key: ${(error as Error).message}`);
    }
    return channel;
  }

  async send(target: PushTarget, notification: Notification): Promise<SendOutcome> {
    const body = JSON.stringify({ message: fcmMessage(notification, target.token) });
    try {
      let answer = await this.post(body);
      if (answer.status === 401 && answer.errorCode !== 'THIRD_PARTY_AUTH_ERROR') {
        // The access token was refused (revoked or expired early): fetch a new one once.
        this.accessToken = undefined;
        answer = await this.post(body);
      }
      return fcmOutcome(answer);
    } catch (error) {
      return { kind: 'retry', reason: `FCM: ${(error as Error).message}` };
    }
  }

  private async post(body: string): Promise<FcmAnswer> {
    const token = await this.currentAccessToken();
    const response = await this.exchange(this.sendUrl, body, {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json; charset=utf-8',
    });
    return readFcmAnswer(response.status, response.body, response.headers['retry-after']);
  }

  /** The OAuth access token, fetched by the JWT bearer grant and kept until shortly before expiry. */
  private currentAccessToken(): Promise<string> {
    const cached = this.accessToken;
    if (cached) {
      return cached.then((t) => {
        if (t.expiresAt - ACCESS_TOKEN_MARGIN_MS > Date.now()) return t.token;
        if (this.accessToken === cached) this.accessToken = undefined;
        return this.currentAccessToken();
      });
    }
    const fetching = this.fetchAccessToken();
    this.accessToken = fetching;
    fetching.catch(() => {
      if (this.accessToken === fetching) this.accessToken = undefined;
    });
    return fetching.then((t) => t.token);
  }

  private async fetchAccessToken(): Promise<{ token: string; expiresAt: number }> {
    const account = this.options.account;
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ scope: MESSAGING_SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(account.private_key_id ? { kid: account.private_key_id } : {}) })
      .setIssuer(account.client_email)
      .setAudience(account.token_uri)
      .setIssuedAt(now)
      .setExpirationTime(now + ASSERTION_LIFETIME_S)
      .sign(await this.key);
    const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString();
    const response = await this.exchange(new URL(account.token_uri), form, {
      'content-type': 'application/x-www-form-urlencoded',
    });
    let body: { access_token?: string; expires_in?: number; error?: string; error_description?: string } = {};
    try {
      body = JSON.parse(response.body);
    } catch {
      // reported below
    }
    if (response.status !== 200 || typeof body.access_token !== 'string') {
      throw new Error(
        `the token endpoint refused the service account: ${response.status} ${body.error ?? ''} ${body.error_description ?? ''}`.trim(),
      );
    }
    const lifetime = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600;
    return { token: body.access_token, expiresAt: Date.now() + lifetime * 1000 };
  }

  private exchange(url: URL, body: string, headers: Record<string, string>) {
    return new Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }>(
      (resolve, reject) => {
        const request = https.request(
          url,
          { method: 'POST', agent: this.agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } },
          (response) => {
            const chunks: Buffer[] = [];
            response.on('data', (chunk: Buffer) => chunks.push(chunk));
            response.on('end', () =>
              resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: response.headers }),
            );
            response.on('error', reject);
          },
        );
        request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
        request.on('error', reject);
        request.end(body);
      },
    );
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}
