/**
 * Close codes a client of a live socket sees. The upgrade is always accepted and then closed
 * with one of these, because a browser cannot read the HTTP status of a refused upgrade but
 * does get the close code and reason.
 */
export const CLOSE = {
  shuttingDown: 1001,
  internalError: 1011,
  /** WebSocket's own "Try Again Later" (RFC 6455 registry): the server cannot take the socket now. */
  tryAgainLater: 1013,
  badRequest: 4400,
  unauthenticated: 4401,
  forbidden: 4403,
  /** Too many connections open, or opened too fast (a rate limit: the reason says when to retry). */
  tooManyConnections: 4429,
} as const;

/** Why a socket is not taken: it is closed with `code` and the message as the reason. */
export class Refusal extends Error {
  constructor(
    readonly code: number,
    reason: string,
  ) {
    super(reason);
  }
}
