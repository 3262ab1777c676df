import { timingSafeEqual } from 'node:crypto';
import { HeraldError } from '../errors.ts';
import { isDatabaseUnavailable } from '../store/db.ts';

/* What every API surface shares: secret comparison and the HTTP status of an error. */

/** Compares two secrets in time that does not depend on where they differ. */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** What a 503 says when the database is away: the same call may be made again shortly. */
export const DATABASE_UNAVAILABLE = 'the database is unavailable; try again shortly';

export function errorStatus(error: unknown): number {
  if (error instanceof HeraldError) return error.httpStatus;
  if (isDatabaseUnavailable(error)) return 503;
  const status = (error as { statusCode?: number }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}

/** The message of a 5xx answer: a 503 says why (try again shortly); anything else is not told. */
export function serverErrorMessage(error: unknown, status: number): string {
  if (status !== 503) return 'internal error';
  return error instanceof HeraldError ? error.message : DATABASE_UNAVAILABLE;
}

/** Where this node can be reached; filled in once the listeners are bound. */
export interface Endpoints {
  http: string;
  https: string;
  ws: string;
  wss: string;
  udp: string;
}
