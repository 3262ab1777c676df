import { badRequest } from '../../errors.ts';

/* Web3MQ calls: request fields, their limits, and the refusals when they are not met. */

export type Fields = Record<string, unknown>;

/** A Web3MQ userid (`user:<sha3-224 hex>`, or a Herald id): printable ASCII, fits `users.id`. */
export const USERID = /^[\x21-\x7e]{1,64}$/;

/** The JSON body of a POST, which must be an object. */
export function bodyOf(body: unknown): Fields {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('the body must be a JSON object');
  }
  return body as Fields;
}

export interface TextRule {
  max: number;
  /** Absent (or empty, for optional fields) gives undefined instead of a refusal. */
  optional?: boolean;
  pattern?: RegExp;
  patternName?: string;
}

export function text(fields: Fields, name: string, rule: TextRule): string | undefined {
  const value = fields[name];
  if (value === undefined || value === null || value === '') {
    if (rule.optional) return undefined;
    throw badRequest(`${name} is required`);
  }
  if (typeof value !== 'string') throw badRequest(`${name} must be a string`);
  if (value.length > rule.max) throw badRequest(`${name} must be at most ${rule.max} characters`);
  if (rule.pattern && !rule.pattern.test(value)) throw badRequest(`${name} must be ${rule.patternName ?? 'well formed'}`);
  return value;
}

export function requiredText(fields: Fields, name: string, rule: Omit<TextRule, 'optional'>): string {
  return text(fields, name, rule)!;
}

export function userid(fields: Fields, name = 'userid'): string {
  return requiredText(fields, name, { max: 64, pattern: USERID, patternName: 'a user id of printable characters' });
}

/** A millisecond timestamp and the decimal text it is signed as. */
export interface Timestamp {
  ms: number;
  text: string;
}

/** Web3MQ timestamps are milliseconds since the epoch; JSON numbers and query strings both occur. */
export function timestamp(fields: Fields, name = 'timestamp'): Timestamp {
  const value = fields[name];
  if (value === undefined || value === null || value === '') throw badRequest(`${name} is required`);
  const written = typeof value === 'number' ? String(value) : value;
  if (typeof written !== 'string' || !/^[1-9][0-9]{0,15}$/.test(written) || !Number.isSafeInteger(Number(written))) {
    throw badRequest(`${name} must be milliseconds since the epoch, written as decimal digits`);
  }
  return { ms: Number(written), text: written };
}

/** A positive whole number within bounds, given as a JSON number or a query string. */
export function boundedInteger(fields: Fields, name: string, min: number, max: number): number {
  const value = fields[name];
  if (value === undefined || value === null || value === '') throw badRequest(`${name} is required`);
  const written = typeof value === 'number' ? String(value) : value;
  if (typeof written !== 'string' || !/^[0-9]{1,9}$/.test(written)) throw badRequest(`${name} must be a whole number`);
  const n = Number(written);
  if (n < min || n > max) throw badRequest(`${name} must be between ${min} and ${max}`);
  return n;
}

/** An array of distinct strings of bounded count and length. */
export function stringList(fields: Fields, name: string, maxItems: number, itemRule: Omit<TextRule, 'optional'>): string[] {
  const value = fields[name];
  if (!Array.isArray(value) || value.length === 0) throw badRequest(`${name} must be a non-empty array`);
  if (value.length > maxItems) throw badRequest(`${name} may hold at most ${maxItems} entries`);
  const items = value.map((item, i) => requiredText({ [`${name}[${i}]`]: item }, `${name}[${i}]`, itemRule));
  if (new Set(items).size !== items.length) throw badRequest(`${name} must not repeat an entry`);
  return items;
}
