import type { SendOutcome } from '../../model/channel.ts';
import { parseRetryAfter } from '../push-common.ts';

/** Turns a push service's answer into the outbox's vocabulary (RFC 8030 §5, §6; RFC 8292 §4). */
export function webPushOutcome(status: number, body: string, retryAfter?: string | string[]): SendOutcome {
  const said = `${status}${body.trim() ? ': ' + body.trim().slice(0, 200) : ''}`;
  if (status >= 200 && status < 300) return { kind: 'delivered', detail: String(status) };
  // The subscription expired or the user revoked it: stop using it.
  if (status === 404 || status === 410) return { kind: 'dead', reason: `subscription gone (${said})` };
  if (status === 413) return { kind: 'failed', reason: `payload too large (${said})` };
  if (status === 429 || status >= 500) return { kind: 'retry', reason: said, afterMs: parseRetryAfter(retryAfter) };
  // 400 malformed request, 401 bad VAPID token, 403 the subscription belongs to another key.
  if (status === 401 || status === 403)
    return { kind: 'failed', reason: `the push service refused Herald's VAPID authorization (${said})` };
  return { kind: 'failed', reason: said };
}
