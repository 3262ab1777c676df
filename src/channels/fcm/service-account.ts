import type https from 'node:https';
import { importPKCS8, SignJWT, type CryptoKey } from 'jose';
import { httpsPost } from './https-post.ts';

// Google OAuth: the assertion may live at most an hour.
const ASSERTION_LIFETIME_S = 3600;
/** Fetch a new access token this long before the old one expires. */
const ACCESS_TOKEN_MARGIN_MS = 5 * 60 * 1000;
const MESSAGING_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

/** The fields of a Firebase service-account JSON file that Herald uses. */
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
    throw new Error(`${source} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const account = value as Partial<ServiceAccount>;
  for (const field of ['project_id', 'private_key', 'client_email', 'token_uri'] as const) {
    if (typeof account[field] !== 'string' || account[field] === '') throw new Error(`${source} has no ${field}`);
  }
  if (!/^https:\/\//.test(account.token_uri!)) throw new Error(`${source}: token_uri must be an https:// URL`);
  if (!/^[a-z0-9-]{1,100}$/i.test(account.project_id!)) throw new Error(`${source}: project_id is not a project id`);
  return account as ServiceAccount;
}

/**
 * The OAuth access token FCM's send endpoint wants, got by the JWT bearer grant (an RS256
 * assertion signed with the account's key, posted to its token_uri) and kept until shortly
 * before it expires.
 */
export class AccessTokens {
  /** The imported private_key; rejects when it is not a PKCS#8 RSA key. */
  readonly key: Promise<CryptoKey>;
  private cached?: Promise<{ token: string; expiresAt: number }>;
  /** What `cached` resolved to, for fresh(). */
  private settled?: { token: string; expiresAt: number };

  constructor(
    private readonly account: ServiceAccount,
    private readonly agent: https.Agent,
  ) {
    this.key = importPKCS8(account.private_key, 'RS256');
    // An unusable key is reported by whoever awaits `key` (at start), not as an unhandled rejection.
    this.key.catch(() => {});
  }

  /** The current access token, fetched when there is none or it is about to expire. */
  current(): Promise<string> {
    const cached = this.cached;
    if (cached) {
      return cached.then((t) => {
        if (t.expiresAt - ACCESS_TOKEN_MARGIN_MS > Date.now()) return t.token;
        if (this.cached === cached) this.cached = undefined;
        return this.current();
      });
    }
    const fetching = this.fetch();
    this.cached = fetching;
    fetching.then(
      (t) => {
        if (this.cached === fetching) this.settled = t;
      },
      () => {},
    );
    fetching.catch(() => {
      if (this.cached === fetching) this.cached = undefined;
    });
    return fetching.then((t) => t.token);
  }

  /**
   * The current access token when one is at hand and not about to expire, without a promise
   * (a push at thousands a second need not wait a microtask for a token an hour old).
   */
  fresh(): string | undefined {
    const settled = this.settled;
    return settled && settled.expiresAt - ACCESS_TOKEN_MARGIN_MS > Date.now() ? settled.token : undefined;
  }

  /** FCM refused the token (revoked or expired early): the next current() fetches a new one. */
  refused(): void {
    this.cached = undefined;
    this.settled = undefined;
  }

  private async fetch(): Promise<{ token: string; expiresAt: number }> {
    const account = this.account;
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ scope: MESSAGING_SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(account.private_key_id ? { kid: account.private_key_id } : {}) })
      .setIssuer(account.client_email)
      .setAudience(account.token_uri)
      .setIssuedAt(now)
      .setExpirationTime(now + ASSERTION_LIFETIME_S)
      .sign(await this.key);
    const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString();
    const response = await httpsPost(this.agent, new URL(account.token_uri), form, {
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
}
