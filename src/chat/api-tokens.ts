import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { ApiTokensTable, Database } from '../store/schema.ts';
import { Statement } from '../store/statement.ts';
import { badRequest, notFound } from '../errors.ts';

/*
 * Scoped API tokens: what another backend holds to call /v1 without the root admin token.
 * A token is `hrld_` and 32 random bytes (base64url); it is shown once, when made, and only
 * its SHA-256 is stored. With that much entropy a plain hash is enough (nothing to guess,
 * so nothing to slow down), and it lets a call find its token by an indexed look-up rather
 * than by comparing against every stored token.
 */

type Db = Kysely<Database>;

/** Everything a scoped token can be granted, each opening a set of /v1 calls. */
export const SCOPES = ['notifications:send', 'users:read', 'users:write', 'devices:write', 'feed:read', 'stats:read'] as const;
export type Scope = (typeof SCOPES)[number];

/** How every scoped token begins, so a bearer token is told from the admin token at a glance. */
export const API_TOKEN_PREFIX = 'hrld_';
export const MAX_TOKEN_NAME_LENGTH = 100;
/** A token lives at most this long (100 years): enough for anyone, and its time stays an exact number. */
export const MAX_EXPIRES_IN_SECONDS = 3_155_760_000;
/** A token's last use is written again only after this long, so a busy sender does not write on every call. */
export const LAST_USE_INTERVAL_MS = 60_000;

export function isScope(value: unknown): value is Scope {
  return typeof value === 'string' && (SCOPES as readonly string[]).includes(value);
}

export interface NewApiToken {
  name: unknown;
  scopes: unknown;
  /** Seconds from now until the token stops working; undefined for a token that does not expire. */
  expiresIn?: unknown;
}

/** A token request that has been checked: a trimmed name, known scopes in their canonical order. */
export interface CheckedApiToken {
  name: string;
  scopes: Scope[];
  expiresIn: number | undefined;
}

/** A token as listed: never the token or its hash. Times are unix milliseconds. */
export interface ApiTokenInfo {
  id: string;
  name: string;
  scopes: Scope[];
  created: number;
  expires: number | null;
  lastused: number | null;
  /** Present once the token is revoked. */
  revoked?: number;
}

/** The answer to making a token: the only time the token itself is seen. */
export interface CreatedApiToken {
  id: string;
  name: string;
  scopes: Scope[];
  token: string;
  created: number;
  expires: number | null;
}

/** What a bearer token turned out to be. */
export type TokenCheck = { ok: true; id: string; name: string; scopes: Scope[] } | { ok: false; reason: 'unknown' | 'expired' | 'revoked' };

/** Refuses a bad name, an empty or unknown scope list, or an expiry that is not in the future. */
export function checkNewApiToken(input: NewApiToken): CheckedApiToken {
  const name = typeof input.name === 'string' ? input.name.trim() : '';
  if (name === '' || name.length > MAX_TOKEN_NAME_LENGTH) {
    throw badRequest(`name must be a non-empty string of at most ${MAX_TOKEN_NAME_LENGTH} characters`);
  }
  if (!Array.isArray(input.scopes) || input.scopes.length === 0) {
    throw badRequest(`scopes must be a non-empty list of: ${SCOPES.join(', ')}`);
  }
  for (const scope of input.scopes) {
    if (!isScope(scope)) throw badRequest(`unknown scope ${JSON.stringify(scope)}; the scopes are ${SCOPES.join(', ')}`);
  }
  const scopes = SCOPES.filter((scope) => (input.scopes as unknown[]).includes(scope));
  const expiresIn = input.expiresIn;
  if (
    expiresIn !== undefined &&
    (!Number.isSafeInteger(expiresIn) || (expiresIn as number) < 1 || (expiresIn as number) > MAX_EXPIRES_IN_SECONDS)
  ) {
    throw badRequest(`expiresin must be a whole number of seconds from 1 to ${MAX_EXPIRES_IN_SECONDS}: an expiry in the future`);
  }
  return { name, scopes, expiresIn: expiresIn as number | undefined };
}

export function hashApiToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export async function createApiToken(db: Db, input: NewApiToken, now = Date.now()): Promise<CreatedApiToken> {
  const { name, scopes, expiresIn } = checkNewApiToken(input);
  const id = randomBytes(16).toString('hex');
  const token = API_TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const expires = expiresIn === undefined ? null : now + expiresIn * 1000;
  await db
    .insertInto('api_tokens')
    .values({
      id,
      name,
      token_hash: hashApiToken(token),
      scopes: scopes.join(' '),
      created_at: now,
      expires_at: expires,
      revoked_at: null,
      last_used_at: null,
    })
    .execute();
  return { id, name, scopes, token, created: now, expires };
}

function scopesOf(text: string): Scope[] {
  return text.split(' ').filter(isScope);
}

function describeApiToken(row: Omit<ApiTokensTable, 'token_hash'>): ApiTokenInfo {
  return {
    id: row.id,
    name: row.name,
    scopes: scopesOf(row.scopes),
    created: row.created_at,
    expires: row.expires_at,
    lastused: row.last_used_at,
    ...(row.revoked_at === null ? {} : { revoked: row.revoked_at }),
  };
}

/** Every token, revoked ones too, oldest first. */
export async function listApiTokens(db: Db): Promise<ApiTokenInfo[]> {
  const rows = await db
    .selectFrom('api_tokens')
    .select(['id', 'name', 'scopes', 'created_at', 'expires_at', 'revoked_at', 'last_used_at'])
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map(describeApiToken);
}

/** Revokes a token (a token revoked before keeps its first revocation time); a 404 for an unknown id. */
export async function revokeApiToken(db: Db, id: string, now = Date.now()): Promise<ApiTokenInfo> {
  await db.updateTable('api_tokens').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).execute();
  const row = await db
    .selectFrom('api_tokens')
    .select(['id', 'name', 'scopes', 'created_at', 'expires_at', 'revoked_at', 'last_used_at'])
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw notFound(`no such token: ${id}`);
  return describeApiToken(row);
}

/** Asked on every call that carries a scoped token, so written once as SQL (the unique index answers it). */
const TOKEN_BY_HASH = new Statement<Omit<ApiTokensTable, 'token_hash' | 'created_at'>>(
  'SELECT id, name, scopes, expires_at, revoked_at, last_used_at FROM api_tokens WHERE token_hash = ?',
);

/**
 * Finds the token in the database on every call, never in a memory of this node: a token
 * revoked through any node is refused by all of them from that moment.
 */
export async function authenticateApiToken(db: Db, token: string, now = Date.now()): Promise<TokenCheck> {
  if (!token.startsWith(API_TOKEN_PREFIX)) return { ok: false, reason: 'unknown' };
  const row = await TOKEN_BY_HASH.first(db, [hashApiToken(token)]);
  if (!row) return { ok: false, reason: 'unknown' };
  if (row.revoked_at !== null) return { ok: false, reason: 'revoked' };
  if (row.expires_at !== null && row.expires_at <= now) return { ok: false, reason: 'expired' };
  if (row.last_used_at === null || now - row.last_used_at >= LAST_USE_INTERVAL_MS) {
    // Conditional, so that nodes answering the same token in the same minute write it once.
    await db
      .updateTable('api_tokens')
      .set({ last_used_at: now })
      .where('id', '=', row.id)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<=', now - LAST_USE_INTERVAL_MS)]))
      .execute();
  }
  return { ok: true, id: row.id, name: row.name, scopes: scopesOf(row.scopes) };
}
