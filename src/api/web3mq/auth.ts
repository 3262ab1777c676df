import type { FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import type { Database } from '../../store/schema.ts';
import { HeraldError, forbidden, unauthorized } from '../../errors.ts';
import { ED25519_HEX, TIMESTAMP_WINDOW_MS, isFresh, verifyEd25519 } from './signature.ts';
import type { Timestamp } from './fields.ts';
import { ed25519SignatureKey, type ReplayGuard, type SignatureUse } from './replay.ts';

/** The caller of a signed Web3MQ call, once its key, timestamp and signature have been checked. */
export interface Web3mqCaller {
  userId: string;
  pubkey: string;
}

export interface SignedCall {
  /** The userid the request names: it must be the key's owner. */
  userid: string;
  timestamp: Timestamp;
  signature: unknown;
  /** The strings the client may have signed (Web3MQ's documentation and SDK differ for some calls). */
  signedStrings: string[];
  /** A write spends its signature; a read may repeat it (see SignatureUse). */
  use: SignatureUse;
  /** Refuses the key's owner before the signature is spent (a rate limit), by throwing. */
  admit?(userId: string): void;
}

const CLAIM_STATUS = { replayed: 409, 'user over limit': 429, 'node over limit': 503 } as const;

/**
 * Spends a verified signature, or refuses the call before it reads or writes anything:
 * 409 for a signature already used, 429 or 503 when the memory of used signatures is full.
 */
export async function spendSignature(
  guard: ReplayGuard,
  key: string,
  userId: string,
  timestampMs: number,
  use: SignatureUse,
  now = Date.now(),
): Promise<void> {
  const refusal = await guard.claimEverywhere(key, userId, timestampMs, use, now);
  if (refusal) throw new HeraldError(CLAIM_STATUS[refusal.refused], refusal.reason);
}

/** Ethereum addresses are compared without their checksum capitals. */
export function canonicalDidValue(didType: string, didValue: string): string {
  return didType === 'eth' ? didValue.toLowerCase() : didValue;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * Checks a signed call: `web3mq-request-pubkey` names a temporary key installed by a login,
 * not yet expired; `didkey` is its owner's `did_type:did_value`; the timestamp is within the
 * window; the signature verifies over one of the accepted strings; and the request's userid
 * is the key's owner; and the signature has not been spent before. Every failure is a
 * refusal before anything is read or written.
 */
export async function authenticateSigned(
  db: Kysely<Database>,
  guard: ReplayGuard,
  request: FastifyRequest,
  call: SignedCall,
  now = Date.now(),
): Promise<Web3mqCaller> {
  const pubkey = header(request, 'web3mq-request-pubkey');
  if (!pubkey) throw unauthorized('the web3mq-request-pubkey header is missing');
  if (!ED25519_HEX.test(pubkey)) throw unauthorized('web3mq-request-pubkey must be a 64-character lowercase hex ed25519 key');
  const didkey = header(request, 'didkey');
  if (!didkey) throw unauthorized('the didkey header is missing');

  const key = await db
    .selectFrom('web3mq_login_keys')
    .innerJoin('web3mq_accounts', 'web3mq_accounts.user_id', 'web3mq_login_keys.user_id')
    .select(['web3mq_login_keys.user_id', 'web3mq_login_keys.expires_at', 'web3mq_accounts.did_type', 'web3mq_accounts.did_value'])
    .where('web3mq_login_keys.pubkey', '=', pubkey)
    .executeTakeFirst();
  if (!key) {
    const main = await db.selectFrom('web3mq_accounts').select('user_id').where('main_pubkey', '=', pubkey).executeTakeFirst();
    if (main) throw unauthorized('the main key only signs logins; log in and sign with the temporary key');
    throw unauthorized('unknown key: web3mq-request-pubkey is not a logged-in key');
  }
  if (key.expires_at <= now) throw unauthorized('the temporary key has expired; log in again');
  if (!isFresh(call.timestamp.ms, now)) {
    throw unauthorized(`timestamp is more than ${TIMESTAMP_WINDOW_MS / 60_000} minutes away from the server's time`);
  }
  const signature = call.signature;
  if (typeof signature !== 'string' || signature === '') throw unauthorized('web3mq_signature is missing');
  if (!call.signedStrings.some((signed) => verifyEd25519(pubkey, signed, signature))) {
    throw unauthorized('bad signature: web3mq_signature does not verify with the request key');
  }
  if (call.userid !== key.user_id) throw forbidden('userid is not the owner of the request key');
  const separator = didkey.indexOf(':');
  const sameDid =
    separator > 0 &&
    didkey.slice(0, separator) === key.did_type &&
    canonicalDidValue(key.did_type, didkey.slice(separator + 1)) === key.did_value;
  if (!sameDid) throw forbidden("didkey is not the key owner's did_type:did_value");
  call.admit?.(key.user_id);
  await spendSignature(guard, ed25519SignatureKey(signature), key.user_id, call.timestamp.ms, call.use, now);
  return { userId: key.user_id, pubkey };
}
