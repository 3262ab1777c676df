import { badRequest } from '../../errors.ts';
import { parseOzekiTime } from '../../chat/ids.ts';

/** Reads the fields of an Ozeki request body, refusing wrong types with a clear message. */
export class Fields {
  constructor(readonly body: Record<string, unknown>) {}

  static of(value: unknown): Fields {
    if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw badRequest('the request body must be a JSON object');
    }
    return new Fields(value as Record<string, unknown>);
  }

  string(name: string, max = 1000): string {
    const value = this.body[name];
    if (value === undefined || value === null) throw badRequest(`${name} is missing`);
    if (typeof value !== 'string') throw badRequest(`${name} must be a string`);
    if (value.length > max) throw badRequest(`${name} is longer than ${max} characters`);
    return value;
  }

  optionalString(name: string, max = 1000): string | undefined {
    const value = this.body[name];
    if (value === undefined || value === null || value === '') return undefined;
    return this.string(name, max);
  }

  nonEmpty(name: string, max = 1000): string {
    const value = this.string(name, max);
    if (value.trim() === '') throw badRequest(`${name} must not be empty`);
    return value;
  }

  /** A `yyyy-MM-dd HH:mm:ss` UTC timestamp, as unix milliseconds. */
  time(name: string): number {
    const value = this.string(name, 19);
    const ms = parseOzekiTime(value);
    if (ms === null) throw badRequest(`${name} must be a UTC time written yyyy-MM-dd HH:mm:ss, got "${value}"`);
    return ms;
  }

  optionalTime(name: string): string | undefined {
    const value = this.optionalString(name, 19);
    if (value !== undefined && parseOzekiTime(value) === null) {
      throw badRequest(`${name} must be a UTC time written yyyy-MM-dd HH:mm:ss, got "${value}"`);
    }
    return value;
  }

  optionalInteger(name: string, min: number, max: number): number | undefined {
    const value = this.body[name];
    if (value === undefined || value === null || value === '') return undefined;
    // A JSON number: "50" in quotes is text, as the README's types say.
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw badRequest(`${name} must be a whole number from ${min} to ${max}`);
    }
    return value;
  }

  stringArray(name: string, maxItems: number, maxLength = 200): string[] {
    const value = this.body[name];
    if (value === undefined || value === null) throw badRequest(`${name} is missing`);
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.length > maxLength)) {
      throw badRequest(`${name} must be a list of strings`);
    }
    if (value.length > maxItems) throw badRequest(`${name} holds more than ${maxItems} items`);
    return value as string[];
  }
}
