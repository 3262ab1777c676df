import type { FastifyReply, FastifyRequest } from 'fastify';
import { TooManyRequests } from '../errors.ts';
import { refusal, type RateLimiter } from '../limits/limiter.ts';
import { pathOf } from './cors.ts';
import { apiOf } from './unmatched.ts';

/*
 * 429 answers for the whole server: each in the error shape of the API its path belongs to,
 * with Retry-After in whole seconds (RFC 9110 §10.2.3).
 */

/** The body of a 429 at this path; Matrix has an errcode and a retry_after_ms of its own. */
export function rateLimitedBody(path: string, error: TooManyRequests): unknown {
  if (path.startsWith('/_matrix/')) return { errcode: 'M_LIMIT_EXCEEDED', error: error.message, retry_after_ms: error.retryAfterMs };
  return apiOf(path).body(429, error.message);
}

/**
 * An onRequest hook: every request pays one token of its source address's bucket before its
 * body is read or parsed, so a flood is turned away at the cost of a map lookup.
 */
export function limitByAddress(limiter: Pick<RateLimiter, 'take'>) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const wait = limiter.take('ip', request.ip);
    if (wait === 0) return;
    const error = refusal('ip', wait);
    // Node reads and drops the unread body, so a keep-alive connection stays usable.
    return reply
      .status(429)
      .header('retry-after', String(error.retryAfterSeconds))
      .send(rateLimitedBody(pathOf(request), error));
  };
}

/** An onError hook: a 429 from any API surface's handler carries its Retry-After. */
export async function retryAfterHeader(_request: FastifyRequest, reply: FastifyReply, error: Error): Promise<void> {
  if (error instanceof TooManyRequests) reply.header('retry-after', String(error.retryAfterSeconds));
}
