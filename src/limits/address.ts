import { isIPv6 } from 'node:net';

/**
 * The key of a source address. An IPv4 address stands for itself (also when it arrives
 * IPv4-mapped, `::ffff:192.0.2.1`); an IPv6 address by its /64, the block one subscriber is
 * given, so stepping through the addresses of one's own block buys no fresh buckets.
 */
export function addressKey(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!isIPv6(address)) return address;
  const [head, tail = ''] = address.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::')
    ? [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill('0'), ...tailGroups]
    : headGroups;
  return `${groups
    .slice(0, 4)
    .map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
