import dns from 'node:dns';
import type net from 'node:net';
import { isInternalAddress } from '../../chat/push-subscription.ts';

/** A push to an endpoint on an internal address, refused (its subscription is dead). */
export class InternalEndpointError extends Error {
  constructor(host: string, address: string) {
    super(`the endpoint ${host} is on a private or loopback address (${address}); set HERALD_WEBPUSH_ALLOW_PRIVATE=1 to allow it`);
  }
}

/**
 * dns.lookup, refusing names that resolve to an internal address. The check is on the
 * address actually connected to, so a name cannot be re-pointed between check and use.
 */
export const publicOnlyLookup: net.LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, options, (error, address, family) => {
    if (error) return callback(error, address, family);
    const addresses = typeof address === 'string' ? [address] : (address as dns.LookupAddress[]).map((a) => a.address);
    const internal = addresses.find(isInternalAddress);
    if (internal !== undefined) return callback(new InternalEndpointError(hostname, internal), address, family);
    callback(null, address, family);
  });
};
