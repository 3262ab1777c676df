import { TooManyRequests } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import { RATE_LIMIT_KINDS, type RateLimitKind, type RateLimitsConfig } from '../config.ts';
import { addressKey } from './address.ts';
import { TokenBuckets } from './token-bucket.ts';

/** Kinds keyed by a source address: the caller hands over the address as it came. */
const BY_ADDRESS: ReadonlySet<RateLimitKind> = new Set(['ip', 'login', 'live', 'udp']);

/** What a refused caller sent too many of, in the 429's message and the close reason. */
const TOO_MANY: Record<RateLimitKind, string> = {
  ip: 'requests from this address',
  station: 'calls from this station',
  user: 'calls for this user',
  login: 'logins or refused credentials from this address',
  send: 'notifications sent by this caller',
  live: 'live connections opened from this address',
  live_station: 'live connections opened by this station',
  udp: 'hellos from this address',
};

/** A gateway send costs one call and one more per hundred recipients: fan-out is the work. */
export function sendCost(recipients: number): number {
  return 1 + Math.floor(recipients / 100);
}

/**
 * Every rate limit of one node, in memory: each node enforces its own, so N nodes behind a
 * balancer allow N times the configured rates (README, "Rate limits").
 */
export class RateLimiter {
  readonly enabled: boolean;
  private readonly buckets = new Map<RateLimitKind, TokenBuckets>();
  private readonly loginFailureCost: number;

  constructor(
    config: RateLimitsConfig,
    private readonly metrics: Pick<Metrics, 'rateLimited'>,
  ) {
    this.enabled = config.enabled;
    this.loginFailureCost = config.loginFailureCost;
    if (!config.enabled) return;
    for (const kind of RATE_LIMIT_KINDS) {
      const rate = config.rates[kind];
      if (rate) this.buckets.set(kind, new TokenBuckets(rate));
    }
  }

  /** Whether this kind is on (the hot paths skip what is off). */
  limits(kind: RateLimitKind): boolean {
    return this.buckets.has(kind);
  }

  /** 0 when the call may go on; else it is refused (and counted): the milliseconds until it may. */
  take(kind: RateLimitKind, key: string, cost = 1): number {
    const buckets = this.buckets.get(kind);
    if (!buckets) return 0;
    const wait = buckets.take(BY_ADDRESS.has(kind) ? addressKey(key) : key, cost);
    if (wait > 0) this.metrics.rateLimited.inc({ limit: kind });
    return wait;
  }

  /** Throws a 429 (TooManyRequests, with its Retry-After) when the call is over the limit. */
  enforce(kind: RateLimitKind, key: string, cost = 1): void {
    const wait = this.take(kind, key, cost);
    if (wait > 0) throw refusal(kind, wait);
  }

  /**
   * Before a credential other than a login's is checked (a bearer token, a signature): refused
   * while the address is in debt for refused credentials; costs nothing otherwise.
   */
  beforeCredential(address: string): void {
    this.enforce('login', address, 0);
  }

  /**
   * A refused credential (a wrong apikey, token or signature): the address's login bucket
   * pays the failure cost, into debt, so guessing slows to a crawl while good logins pay 1.
   */
  credentialRefused(address: string): void {
    this.buckets.get('login')?.charge(addressKey(address), this.loginFailureCost);
  }
}

/** The 429 of a call over the limit of `kind`. */
export function refusal(kind: RateLimitKind, retryAfterMs: number): TooManyRequests {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new TooManyRequests(`rate limited: too many ${TOO_MANY[kind]}; try again in ${seconds} s`, retryAfterMs);
}

/** What an API surface uses of the limiter. */
export type CallLimits = Pick<RateLimiter, 'enforce' | 'beforeCredential' | 'credentialRefused'>;
