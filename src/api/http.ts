import { timingSafeEqual } from 'node:crypto';
import { HeraldError } from '../errors.ts';

/* What every API surface shares: secret comparison and the HTTP status of an error. */

/** Compares two secrets in time that does not depend on where they differ. */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function errorStatus(error: unknown): number {
  if (error instanceof HeraldError) return error.httpStatus;
  const status = (error as { statusCode?: number }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}

/** Where this node can be reached; filled in once the listeners are bound. */
export interface Endpoints {
  http: string;
  https: string;
  ws: string;
  wss: string;
  udp: string;
}
