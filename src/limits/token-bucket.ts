import type { Rate } from '../config.ts';

/**
 * Keys one kind of limit remembers at most. A bucket that has refilled is the same as no
 * bucket, so those go first; past that the oldest go (each comes back full: lenient, never
 * wrong), so a caller inventing keys cannot grow memory without bound.
 */
export const DEFAULT_MAX_KEYS = 50_000;

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill. */
  at: number;
}

/**
 * One kind of limit: a token bucket per key, refilled lazily when the key is next seen, so
 * an idle key costs no timer and no work.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  constructor(
    readonly rate: Rate,
    private readonly maxKeys = DEFAULT_MAX_KEYS,
  ) {
    this.perMs = rate.perSecond / 1000;
  }

  get size(): number {
    return this.buckets.size;
  }

  /**
   * Takes `cost` tokens from the key's bucket: 0 when they were there, else the milliseconds
   * until they will be (nothing is taken then). A cost beyond the burst is taken as the burst,
   * so every call can pass with a full bucket.
   */
  take(key: string, cost = 1, now = performance.now()): number {
    const bucket = this.refilled(key, now);
    const needed = Math.min(cost, this.rate.burst);
    if (bucket.tokens >= needed) {
      bucket.tokens -= needed;
      return 0;
    }
    // Rounded up, less a hair of floating-point error (0.998 tokens at 2/s is 1 ms, not 2).
    return Math.max(1, Math.ceil((needed - bucket.tokens) / this.perMs - 1e-6));
  }

  /**
   * Takes `cost` whether or not the tokens are there, down to one burst in debt: what a
   * refused credential costs, so each failure beyond the burst pushes the next try further out.
   */
  charge(key: string, cost: number, now = performance.now()): void {
    const bucket = this.refilled(key, now);
    bucket.tokens = Math.max(-this.rate.burst, bucket.tokens - cost);
  }

  private refilled(key: string, now: number): Bucket {
    let bucket = this.buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(this.rate.burst, bucket.tokens + (now - bucket.at) * this.perMs);
      bucket.at = now;
      return bucket;
    }
    if (this.buckets.size >= this.maxKeys) this.evict(now);
    bucket = { tokens: this.rate.burst, at: now };
    this.buckets.set(key, bucket);
    return bucket;
  }

  /** Forgets the refilled buckets, then the oldest, down to nine tenths of the bound. */
  private evict(now: number): void {
    const keep = Math.floor(this.maxKeys * 0.9);
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.at) * this.perMs >= this.rate.burst) this.buckets.delete(key);
    }
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= keep) break;
      this.buckets.delete(key);
    }
  }
}
