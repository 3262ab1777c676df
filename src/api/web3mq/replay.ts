import type { SpentSignatures } from '../../cluster/spent-signatures.ts';
import { TIMESTAMP_WINDOW_MS } from './signature.ts';

/*
 * Web3MQ signs a timestamp, not a nonce, so a captured signed call would verify again for as
 * long as its timestamp is within the window. Each signature that authenticates a call is
 * remembered here until its timestamp has left the window, and a second use is refused.
 *
 * The memory is this node's own and answers at once; with several nodes (a Redis bus), a
 * signature is also spent on the bus, so one spent on another node is refused here too.
 */

/** Signatures one node remembers at once (about 150 bytes each: some 40 MB at the cap). */
export const MAX_REMEMBERED_SIGNATURES = 250_000;
/** Signatures one user may have remembered at once, so that one user cannot fill the node's memory. */
export const MAX_REMEMBERED_PER_USER = 5_000;
/** Expiry is swept in slots of this width; a slot goes when its last moment is past. */
const SWEEP_SLOT_MS = 10_000;

/**
 * A read may be repeated with its signature (the history: its signed string names neither
 * page nor size, so any holder of the URL can already read every page); a write may not.
 * A signature first used for a read is still spent for writes: Web3MQ's signed strings do
 * not name the call, and a history signature over `userid + topic + timestamp` is exactly a
 * valid publish_topic_message signature.
 */
export type SignatureUse = 'read' | 'write';

export type ClaimRefusal =
  { refused: 'replayed'; reason: string } | { refused: 'user over limit'; reason: string } | { refused: 'node over limit'; reason: string };

interface Remembered {
  userId: string;
  use: SignatureUse;
  /** The last moment the signed timestamp is fresh: `timestamp + TIMESTAMP_WINDOW_MS`. */
  freshUntil: number;
}

const REPLAYED: ClaimRefusal = { refused: 'replayed', reason: 'this signed request was already used; sign it again with a new timestamp' };

export class ReplayGuard {
  private readonly remembered = new Map<string, Remembered>();
  private readonly perUser = new Map<string, number>();
  /** Signature keys by the sweep slot in which they stop being fresh. */
  private readonly slots = new Map<number, string[]>();
  private nextSweepAt = 0;

  constructor(
    /** Where spent signatures are shared with the other nodes (none: this node alone). */
    private readonly shared?: SpentSignatures,
    readonly maxRemembered = MAX_REMEMBERED_SIGNATURES,
    readonly maxPerUser = MAX_REMEMBERED_PER_USER,
  ) {}

  get size(): number {
    return this.remembered.size;
  }

  /**
   * Spends a signature whose timestamp has been checked to be fresh at `now`: undefined when
   * the call may go ahead, else why not. The check and the record are one synchronous step,
   * so two copies of a call arriving together cannot both pass.
   */
  claim(key: string, userId: string, timestampMs: number, use: SignatureUse, now = Date.now()): ClaimRefusal | undefined {
    this.sweep(now);
    const earlier = this.remembered.get(key);
    if (earlier && earlier.freshUntil >= now) {
      if (use === 'read' && earlier.use === 'read') return undefined;
      return REPLAYED;
    }
    if (earlier) this.forget(key, earlier);
    // Past the cap nothing is forgotten early: forgetting a signature still in the window
    // would let it be replayed, so new signed calls are refused until old ones expire.
    if (this.remembered.size >= this.maxRemembered) {
      return { refused: 'node over limit', reason: 'too many signed requests on this server in the last minutes; try again shortly' };
    }
    const count = this.perUser.get(userId) ?? 0;
    if (count >= this.maxPerUser) {
      return {
        refused: 'user over limit',
        reason: `at most ${this.maxPerUser} signed requests per user within ${TIMESTAMP_WINDOW_MS / 60_000} minutes; try again shortly`,
      };
    }
    const freshUntil = timestampMs + TIMESTAMP_WINDOW_MS;
    this.remembered.set(key, { userId, use, freshUntil });
    this.perUser.set(userId, count + 1);
    const slot = Math.floor(freshUntil / SWEEP_SLOT_MS);
    const keys = this.slots.get(slot);
    if (keys) keys.push(key);
    else this.slots.set(slot, [key]);
    return undefined;
  }

  /**
   * `claim` on this node, then on every node through the bus: undefined when the call may go
   * ahead. The local record comes first, so two copies arriving at one node together are
   * told apart without waiting for the bus.
   */
  async claimEverywhere(
    key: string,
    userId: string,
    timestampMs: number,
    use: SignatureUse,
    now = Date.now(),
  ): Promise<ClaimRefusal | undefined> {
    const refusal = this.claim(key, userId, timestampMs, use, now);
    if (refusal || !this.shared) return refusal;
    if (await this.shared.spendEverywhere(key, use, timestampMs + TIMESTAMP_WINDOW_MS - now + 1)) return undefined;
    return REPLAYED;
  }

  private forget(key: string, entry: Remembered): void {
    this.remembered.delete(key);
    const left = (this.perUser.get(entry.userId) ?? 1) - 1;
    if (left > 0) this.perUser.set(entry.userId, left);
    else this.perUser.delete(entry.userId);
  }

  private sweep(now: number): void {
    if (now < this.nextSweepAt) return;
    this.nextSweepAt = now + 1000;
    for (const [slot, keys] of this.slots) {
      if ((slot + 1) * SWEEP_SLOT_MS > now) continue;
      this.slots.delete(slot);
      for (const key of keys) {
        const entry = this.remembered.get(key);
        // A key can sit in an old slot and, re-spent after expiring, in a newer one too.
        if (entry && entry.freshUntil < now) this.forget(key, entry);
      }
    }
  }
}

/**
 * The key a signature is remembered by: the R half of the decoded ed25519 signature. Base64
 * text has spare bits in its last character, so two texts can decode to one signature; and R
 * is fixed by the key and the signed string, so no one without the private key can make a
 * second valid signature of the same call with another R.
 */
export function ed25519SignatureKey(signatureBase64: string): string {
  return `ed25519:${Buffer.from(signatureBase64, 'base64').subarray(0, 32).toString('hex')}`;
}
