import webPush from 'web-push';
import type { VapidKeys } from './vapid-keys.ts';

/** RFC 8292 §2: exp at most 24 hours ahead; 12 hours leaves room for clock skew. */
const VAPID_TOKEN_LIFETIME_S = 12 * 3600;
/** A kept header is signed again once its token has less than this left (so it is reused for an hour). */
const VAPID_TOKEN_MIN_REMAINING_S = 11 * 3600;

/**
 * The Authorization header of a push to a push service origin, RFC 8292:
 * `vapid t=<ES256 JWT {aud: origin, exp, sub}>, k=<public key>`. A token is valid for every
 * push to its origin, so one is signed per origin and reused for an hour rather than an
 * ES256 signature per push.
 *
 * HERALD_NO_VAPID_TOKEN_CACHE=1 signs a token for every push.
 */
export class VapidAuthorization {
  private readonly byOrigin: Map<string, { header: string; expiresAt: number }> | undefined;

  constructor(
    private readonly keys: VapidKeys,
    private readonly subject: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.byOrigin = env.HERALD_NO_VAPID_TOKEN_CACHE === '1' ? undefined : new Map();
  }

  header(origin: string): string {
    const now = Math.floor(Date.now() / 1000);
    const kept = this.byOrigin?.get(origin);
    if (kept && kept.expiresAt - now > VAPID_TOKEN_MIN_REMAINING_S) return kept.header;
    const expiresAt = now + VAPID_TOKEN_LIFETIME_S;
    const { publicKey, privateKey } = this.keys;
    const header = webPush.getVapidHeaders(origin, this.subject, publicKey, privateKey, 'aes128gcm', expiresAt).Authorization;
    this.byOrigin?.set(origin, { header, expiresAt });
    return header;
  }
}
