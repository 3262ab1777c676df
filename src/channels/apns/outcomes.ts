import type { SendOutcome } from '../../model/channel.ts';

/** The provider's answer to one request. */
export interface ApnsAnswer {
  status: number;
  apnsId?: string;
  reason?: string;
  /** 410: when the token stopped being valid (ms since the epoch). */
  timestamp?: number;
  retryAfterMs?: number;
}

type Verdict = 'dead' | 'retry' | 'failed';

/**
 * Every reason APNs gives, with the status it comes with and what it means to the outbox.
 * Apple, "Handling notification responses from APNs" (the status codes and the `reason`
 * of the JSON body):
 * https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns
 */
const APNS_REASONS: ReadonlyArray<readonly [status: number, reason: string, verdict: Verdict]> = [
  // The token is no longer active for the topic (410, with the moment it stopped), is
  // malformed, or belongs to another app: drop it.
  [410, 'Unregistered', 'dead'],
  [410, 'ExpiredToken', 'dead'],
  [400, 'BadDeviceToken', 'dead'],
  [400, 'DeviceTokenNotForTopic', 'dead'],

  // Apple is busy, going away, or closed an idle connection: the same push may go later.
  [429, 'TooManyRequests', 'retry'],
  [429, 'TooManyProviderTokenUpdates', 'retry'],
  [500, 'InternalServerError', 'retry'],
  [503, 'ServiceUnavailable', 'retry'],
  [503, 'Shutdown', 'retry'],
  [400, 'IdleTimeout', 'retry'],
  // The channel signs a fresh provider token before the retry.
  [403, 'ExpiredProviderToken', 'retry'],

  // The request, the key or the configuration is wrong: sending it again would not help.
  [400, 'BadCollapseId', 'failed'],
  [400, 'BadExpirationDate', 'failed'],
  [400, 'BadMessageId', 'failed'],
  [400, 'BadPriority', 'failed'],
  [400, 'BadTopic', 'failed'],
  [400, 'DuplicateHeaders', 'failed'],
  [400, 'InvalidPushType', 'failed'],
  [400, 'MissingDeviceToken', 'failed'],
  [400, 'MissingTopic', 'failed'],
  [400, 'PayloadEmpty', 'failed'],
  [400, 'TopicDisallowed', 'failed'],
  [403, 'BadCertificate', 'failed'],
  [403, 'BadCertificateEnvironment', 'failed'],
  [403, 'Forbidden', 'failed'],
  [403, 'InvalidProviderToken', 'failed'],
  [403, 'MissingProviderToken', 'failed'],
  [403, 'UnrelatedKeyIdInToken', 'failed'],
  [404, 'BadPath', 'failed'],
  [405, 'MethodNotAllowed', 'failed'],
  [413, 'PayloadTooLarge', 'failed'],
];

/** A reason names one status in Apple's table, so the reason alone decides; the status only for a reason not listed. */
const VERDICT_BY_REASON = new Map(APNS_REASONS.map(([, reason, verdict]) => [reason, verdict]));

/** Turns a provider answer into the outbox's vocabulary; every APNs reason lands on one outcome. */
export function apnsOutcome(answer: ApnsAnswer): SendOutcome {
  const { status, reason } = answer;
  const said = `${status}${reason ? ' ' + reason : ''}`;
  if (status === 200) return { kind: 'delivered', detail: `200 apns-id ${answer.apnsId ?? ''}`.trim() };
  const listed = reason !== undefined ? VERDICT_BY_REASON.get(reason) : undefined;
  switch (listed ?? verdictOfStatus(status)) {
    case 'dead':
      // APNs: a 410 says since when the token has been invalid.
      return { kind: 'dead', reason: listed && answer.timestamp ? `${said} since ${new Date(answer.timestamp).toISOString()}` : said };
    case 'retry':
      return { kind: 'retry', reason: said, afterMs: answer.retryAfterMs };
    case 'failed':
      return { kind: 'failed', reason: said };
  }
}

/** An unknown reason: the status decides. */
function verdictOfStatus(status: number): Verdict {
  if (status === 429 || status >= 500) return 'retry';
  if (status === 410) return 'dead';
  return 'failed';
}
