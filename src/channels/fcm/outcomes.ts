import type { SendOutcome } from '../../model/channel.ts';
import { parseRetryAfter } from '../push-common.ts';

/** The FCM error body: {"error":{code, message, status, details:[{@type, errorCode | fieldViolations}]}}. */
interface FcmErrorBody {
  error?: {
    code?: number;
    message?: string;
    status?: string;
    details?: Array<{ '@type'?: string; errorCode?: string; fieldViolations?: Array<{ field?: string; description?: string }> }>;
  };
}

export interface FcmAnswer {
  status: number;
  /** projects/<p>/messages/<id> on success. */
  name?: string;
  /** The FcmError errorCode, or the google.rpc status when there is none. */
  errorCode?: string;
  message?: string;
  /** Fields the request was refused for (INVALID_ARGUMENT). */
  fieldViolations?: string[];
  retryAfterMs?: number;
}

export function readFcmAnswer(status: number, bodyText: string, retryAfter?: string | string[]): FcmAnswer {
  const answer: FcmAnswer = { status, retryAfterMs: parseRetryAfter(retryAfter) };
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    if (status !== 200) answer.message = bodyText.slice(0, 200);
    return answer;
  }
  if (status === 200) {
    answer.name = (body as { name?: string }).name;
    return answer;
  }
  const error = (body as FcmErrorBody).error;
  answer.message = error?.message;
  const fcmDetail = error?.details?.find((d) => d['@type']?.endsWith('google.firebase.fcm.v1.FcmError'));
  answer.errorCode = fcmDetail?.errorCode ?? error?.status;
  answer.fieldViolations = error?.details?.flatMap((d) => d.fieldViolations ?? []).map((v) => v.field ?? '');
  return answer;
}

type Verdict = 'dead' | 'retry' | 'failed';

/**
 * Every FCM error code, with the status it comes with (none given for UNSPECIFIED_ERROR)
 * and what it means to the outbox. Firebase, "ErrorCode" of the HTTP v1 API:
 * https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
 */
const FCM_ERROR_CODES: ReadonlyArray<readonly [status: number | undefined, errorCode: string, verdict: Verdict]> = [
  // The token is no longer valid, or belongs to another sender: drop it.
  [404, 'UNREGISTERED', 'dead'],
  [403, 'SENDER_ID_MISMATCH', 'dead'],
  // A bad request; dead only when the violation is on message.token (see fcmOutcome).
  [400, 'INVALID_ARGUMENT', 'failed'],
  // Over quota, or Google's side is busy: the same message may go later.
  [429, 'QUOTA_EXCEEDED', 'retry'],
  [503, 'UNAVAILABLE', 'retry'],
  [500, 'INTERNAL', 'retry'],
  // The APNs or Web Push credentials in the Firebase project are wrong, or nothing is known.
  [401, 'THIRD_PARTY_AUTH_ERROR', 'failed'],
  [undefined, 'UNSPECIFIED_ERROR', 'failed'],
];

const VERDICT_BY_CODE = new Map(FCM_ERROR_CODES.map(([, errorCode, verdict]) => [errorCode, verdict]));

/** Turns an FCM answer into the outbox's vocabulary; every FCM error code lands on one outcome. */
export function fcmOutcome(answer: FcmAnswer): SendOutcome {
  const said = `${answer.status} ${answer.errorCode ?? ''}${answer.message ? ': ' + answer.message : ''}`.trim();
  if (answer.status === 200) return { kind: 'delivered', detail: `200 ${answer.name ?? ''}`.trim() };
  const listed = answer.errorCode !== undefined ? VERDICT_BY_CODE.get(answer.errorCode) : undefined;
  // FCM: only a violation on message.token means the token itself is bad.
  const tokenRefused = answer.errorCode === 'INVALID_ARGUMENT' && answer.fieldViolations?.includes('message.token');
  switch (tokenRefused ? 'dead' : (listed ?? verdictOfStatus(answer.status))) {
    case 'dead':
      return { kind: 'dead', reason: said };
    case 'retry':
      return { kind: 'retry', reason: said, afterMs: answer.retryAfterMs };
    case 'failed':
      return { kind: 'failed', reason: said };
  }
}

/** An unknown code: the status decides. */
function verdictOfStatus(status: number): Verdict {
  return status === 429 || status >= 500 ? 'retry' : 'failed';
}
