import { describe, expect, it } from 'vitest';
import { TokenBuckets } from '../src/limits/token-bucket.ts';
import { addressKey } from '../src/limits/address.ts';
import { ConfigError, loadConfig } from '../src/config.ts';

describe('a token bucket per key', () => {
  it('takes a burst, then refills at the rate, and says how long until the next call', () => {
    const buckets = new TokenBuckets({ burst: 3, perSecond: 2 });
    const t = 1000;
    expect([buckets.take('a', 1, t), buckets.take('a', 1, t), buckets.take('a', 1, t)]).toEqual([0, 0, 0]);
    expect(buckets.take('a', 1, t)).toBe(500);
    // Another key has a bucket of its own.
    expect(buckets.take('b', 1, t)).toBe(0);
    expect(buckets.take('a', 1, t + 499)).toBe(1);
    expect(buckets.take('a', 1, t + 500)).toBe(0);
    // Idle, it fills up to the burst and no further.
    expect([0, 1, 2, 3].map(() => buckets.take('a', 1, t + 60_000))).toEqual([0, 0, 0, 1500 / 3]);
  });

  it('a call costing more than the burst passes on a full bucket', () => {
    const buckets = new TokenBuckets({ burst: 5, perSecond: 5 });
    expect(buckets.take('a', 50, 0)).toBe(0);
    expect(buckets.take('a', 50, 0)).toBe(1000);
  });

  it('a refused credential puts the key in debt, at most one burst deep', () => {
    const buckets = new TokenBuckets({ burst: 10, perSecond: 1 });
    buckets.charge('a', 25, 0);
    // -10 tokens: 10 s back to zero, and 11 s until a call of 1.
    expect(buckets.take('a', 0, 0)).toBe(10_000);
    expect(buckets.take('a', 1, 0)).toBe(11_000);
  });

  it('keys invented without end cannot grow its memory past the bound', () => {
    const buckets = new TokenBuckets({ burst: 2, perSecond: 1 }, 1000);
    for (let i = 0; i < 100_000; i++) buckets.take(`address-${i}`, 1, 0);
    expect(buckets.size).toBeLessThanOrEqual(1000);
    // Refilled buckets go first: a drained key that is still owed survives a wave of full ones.
    const bounded = new TokenBuckets({ burst: 2, perSecond: 1 }, 10);
    bounded.take('flooder', 2, 0);
    for (let i = 0; i < 9; i++) bounded.take(`idle-${i}`, 0, 0);
    bounded.take('newcomer', 1, 0);
    expect(bounded.take('flooder', 1, 0)).toBeGreaterThan(0);
  });
});

describe('source addresses as keys', () => {
  it('IPv4 stands for itself, mapped or not; IPv6 by its /64', () => {
    expect(addressKey('192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('2001:db8:0:1:aaaa::1')).toBe('2001:db8:0:1::/64');
    expect(addressKey('2001:DB8:0:1:bbbb:cccc:dddd:eeee')).toBe('2001:db8:0:1::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
  });
});

describe('rate limit configuration', () => {
  it('has defaults a normal client never meets, and each kind can be set or turned off', () => {
    const defaults = loadConfig({}).rateLimits;
    expect(defaults.enabled).toBe(true);
    expect(defaults.rates.station).toEqual({ burst: 3000, perSecond: 1500 });
    expect(defaults.rates.login).toEqual({ burst: 200, perSecond: 200 / 60 });
    expect(defaults.loginFailureCost).toBe(20);
    const set = loadConfig({
      HERALD_LIMIT_IP: '60/1m',
      HERALD_LIMIT_UDP: 'off',
      HERALD_LIMIT_SEND: '10/s',
      HERALD_RATE_LIMITS: '0',
    }).rateLimits;
    expect(set.rates.ip).toEqual({ burst: 60, perSecond: 1 });
    expect(set.rates.udp).toBeUndefined();
    expect(set.rates.send).toEqual({ burst: 10, perSecond: 10 });
    expect(set.enabled).toBe(false);
  });

  it.each([
    [{ HERALD_LIMIT_IP: '100' }, /^HERALD_LIMIT_IP must be <count>\/<period> such as 100\/10s/],
    [{ HERALD_LIMIT_STATION: '0/1s' }, /^HERALD_LIMIT_STATION must be/],
    [{ HERALD_LIMIT_LOGIN: '10/0s' }, /^HERALD_LIMIT_LOGIN must be/],
    [{ HERALD_LIMIT_LIVE: '10/1d' }, /^HERALD_LIMIT_LIVE must be/],
    [{ HERALD_RATE_LIMITS: 'no' }, /^HERALD_RATE_LIMITS must be 0 or 1/],
    [{ HERALD_LIMIT_LOGIN_FAILURE_COST: '0' }, /^HERALD_LIMIT_LOGIN_FAILURE_COST must be a whole number/],
  ])('%o stops the start naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
