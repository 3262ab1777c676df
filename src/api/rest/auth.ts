import type { FastifyRequest } from 'fastify';
import { isAdminToken, type AdminTokenHash } from '../../admin-token.ts';
import { forbidden, unauthorized } from '../../errors.ts';
import { API_TOKEN_PREFIX, SCOPES, type Scope } from '../../chat/api-tokens.ts';
import type { ApiTokens, Devices } from '../../chat/services.ts';
import type { CallLimits } from '../../limits/limiter.ts';

/*
 * Who may call /v1. Three credentials:
 * - `Authorization: Bearer <admin token>`: the root credential, allowed everything;
 * - `Authorization: Bearer hrld_…`: a scoped token, allowed the calls of its scopes;
 * - `Ozeki-Station` of a logged-in device: its user, acting on their own account only.
 */

export { SCOPES, type Scope };

/** What authentication needs of the node. */
export interface AuthParts {
  /** The root credential, as its SHA-256. */
  adminTokenHash: AdminTokenHash;
  devices: Pick<Devices, 'deviceOf'>;
  apiTokens: Pick<ApiTokens, 'authenticate'>;
  /** Refused bearer tokens per address; calls per station and user for a station's calls. */
  limits: CallLimits;
}

/** Who is calling the native API. */
export type RestCaller =
  | { kind: 'admin' }
  | { kind: 'token'; tokenId: string; name: string; scopes: readonly Scope[] }
  | { kind: 'user'; userId: string; station: string };

// Only a caller holding the token itself reaches "expired" or "revoked" (the look-up is by its
// hash), so saying which tells nothing to anyone else.
const TOKEN_REFUSALS = {
  unknown: 'unknown token',
  expired: 'the token has expired',
  revoked: 'the token has been revoked',
} as const;

/** Authenticates the request; a 401 when it carries no credential that holds. */
export async function restCaller(parts: AuthParts, request: FastifyRequest): Promise<RestCaller> {
  const auth = request.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) {
    const bearer = auth.slice(7).trim();
    parts.limits.beforeCredential(request.ip);
    if (isAdminToken(bearer, parts.adminTokenHash)) return { kind: 'admin' };
    if (!bearer.startsWith(API_TOKEN_PREFIX)) {
      parts.limits.credentialRefused(request.ip);
      throw unauthorized('the bearer token is neither the admin token nor an API token');
    }
    const token = await parts.apiTokens.authenticate(bearer);
    if (!token.ok) {
      // A guess, unlike an expired or revoked token, which only its holder can present.
      if (token.reason === 'unknown') parts.limits.credentialRefused(request.ip);
      throw unauthorized(TOKEN_REFUSALS[token.reason]);
    }
    return { kind: 'token', tokenId: token.id, name: token.name, scopes: token.scopes };
  }
  const station = request.headers['ozeki-station'];
  if (typeof station === 'string' && station !== '') {
    const device = await parts.devices.deviceOf(station.toLowerCase());
    if (!device) throw unauthorized('unknown station; log in first');
    parts.limits.enforce('station', device.station);
    parts.limits.enforce('user', device.user_id);
    return { kind: 'user', userId: device.user_id, station: device.station };
  }
  throw unauthorized('send Authorization: Bearer <admin token or API token> or the Ozeki-Station header of a logged-in device');
}

/** Calls only the root credential may make (managing tokens: a token never makes another). */
export async function requireAdmin(parts: AuthParts, request: FastifyRequest): Promise<RestCaller> {
  const caller = await restCaller(parts, request);
  if (caller.kind !== 'admin') throw forbidden('this call needs the admin token');
  return caller;
}

/**
 * The admin may make every call and a token the calls of its scopes. With `selfUserId`, the
 * user of that id may also make the call through a station of theirs (their own account).
 * A 401 for a credential that does not hold, a 403 naming the scope for one that is not enough.
 */
export async function requireScope(
  parts: AuthParts,
  request: FastifyRequest,
  scope: Scope,
  { selfUserId }: { selfUserId?: string } = {},
): Promise<RestCaller> {
  const caller = await restCaller(parts, request);
  switch (caller.kind) {
    case 'admin':
      return caller;
    case 'token':
      if (caller.scopes.includes(scope)) return caller;
      throw forbidden(`this call needs the scope ${scope}; the token has ${caller.scopes.join(', ')}`);
    case 'user':
      if (selfUserId === undefined) throw forbidden(`this call needs the admin token or a token with the scope ${scope}`);
      if (caller.userId !== selfUserId) throw forbidden('you may only see your own account');
      return caller;
  }
}
