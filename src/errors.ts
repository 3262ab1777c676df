/**
 * A refusal that the caller can act on. Each API surface renders it in its own shape
 * (Ozeki: status ERROR + errormessage; Web3MQ: code + msg; /v1: error).
 */
export class HeraldError extends Error {
  constructor(
    readonly httpStatus: number,
    message: string,
    /** Web3MQ-style numeric code; defaults to the HTTP status. */
    readonly code: number = httpStatus,
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new HeraldError(400, message);
export const unauthorized = (message: string) => new HeraldError(401, message);
export const forbidden = (message: string) => new HeraldError(403, message);
export const notFound = (message: string) => new HeraldError(404, message);
export const conflict = (message: string) => new HeraldError(409, message);

/** 429: a rate limit refused the call; each API sends Retry-After (whole seconds) with it. */
export class TooManyRequests extends HeraldError {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(429, message);
  }

  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.retryAfterMs / 1000));
  }
}
