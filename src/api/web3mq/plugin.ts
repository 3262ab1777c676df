import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Notifier } from '../../notify/notifier.ts';
import { HeraldError, badRequest } from '../../errors.ts';
import { DATABASE_UNAVAILABLE } from '../http.ts';
import { isDatabaseUnavailable } from '../../store/db.ts';
import type { SignedCall, Web3mqCaller } from './auth.ts';
import type { CallLimits } from '../../limits/limiter.ts';
import { type Fields, bodyOf, boundedInteger, requiredText, stringList, text, timestamp, userid } from './fields.ts';
import type { Web3mqServices } from './services.ts';
import { MAX_PAGE, MAX_PAGE_SIZE, MAX_STATUS_MESSAGES, changeStatus, isNoticeType, type NotificationStatus } from './history.ts';
import { agreeFriendRequest, createTopic, inviteToGroup, publishTopicMessage, sendFriendRequest, subscribeTopic } from './sources.ts';

const ID_RULE = { max: 100, pattern: /^[\x21-\x7e]+$/, patternName: 'an id of printable characters' };

/** Web3MQ answers {code: 0, msg: "ok", data} on success and {code: non-zero, msg} on failure. */
function ok(data?: unknown) {
  return data === undefined ? { code: 0, msg: 'ok' } : { code: 0, msg: 'ok', data };
}

function sendWeb3mqError(reply: FastifyReply, error: unknown, log: Logger) {
  if (error instanceof HeraldError) return reply.status(error.httpStatus).send({ code: error.code, msg: error.message });
  const status = (error as { statusCode?: number }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return reply.status(status).send({ code: status, msg: (error as Error).message });
  }
  log.error({ err: error }, 'Web3MQ request failed');
  if (isDatabaseUnavailable(error)) return reply.status(503).send({ code: 503, msg: DATABASE_UNAVAILABLE });
  return reply.status(500).send({ code: 500, msg: 'internal error' });
}

/** What the Web3MQ API works with: built once per node in app.ts. */
export interface Web3mqParts {
  /** Accounts, signed calls (spending from the replay guard /messages shares) and history. */
  web3mq: Web3mqServices;
  /** The calls that cause notifications write through it (sources.ts). */
  notifier: Notifier;
  /** Logins and refused signatures per address; signed calls per user. */
  limits: CallLimits;
  log: Logger;
}

/**
 * The Web3MQ notification API under /api: keys (register, login, user info), the signed
 * notification history and read status, and the calls that cause notifications.
 */
export function web3mqApi(parts: Web3mqParts): FastifyPluginAsync {
  return async (app) => {
    app.setErrorHandler((error, _request, reply) => sendWeb3mqError(reply, error, parts.log));
    const { web3mq, notifier, limits } = parts;

    /** A refused key or signature (401) costs the address more in its login bucket. */
    const chargingRefusals = async <T>(request: FastifyRequest, check: () => Promise<T>): Promise<T> => {
      try {
        return await check();
      } catch (error) {
        if (error instanceof HeraldError && error.httpStatus === 401) limits.credentialRefused(request.ip);
        throw error;
      }
    };

    /** A signed call: its user pays a token of their bucket before the signature is spent. */
    const authenticate = (request: FastifyRequest, call: SignedCall) => {
      limits.beforeCredential(request.ip);
      return chargingRefusals(request, () => web3mq.authenticate(request, { ...call, admit: (userId) => limits.enforce('user', userId) }));
    };

    /** Registers and logins verify a wallet or main-key signature: each pays the address's login bucket. */
    const loggingIn = <T>(request: FastifyRequest, run: () => Promise<T>): Promise<T> => {
      limits.enforce('login', request.ip);
      return chargingRefusals(request, run);
    };

    /** Checks a signed POST body: its userid, timestamp and web3mq_signature over `signed(userid)`. */
    const signedBody = async (
      request: FastifyRequest,
      fields: Fields,
      signed: (userid: string, timestamp: string) => string,
    ): Promise<Web3mqCaller & { signature: string }> => {
      const id = userid(fields);
      const time = timestamp(fields);
      const caller = await authenticate(request, {
        userid: id,
        timestamp: time,
        signature: fields.web3mq_signature,
        signedStrings: [signed(id, time.text)],
        use: 'write',
      });
      return { ...caller, signature: fields.web3mq_signature as string };
    };

    app.post('/get_user_info/', async (request) => ok(await web3mq.userInfo(bodyOf(request.body))));

    app.post('/user_register_v2/', async (request) => ok(await loggingIn(request, () => web3mq.register(bodyOf(request.body)))));

    app.post('/user_login_v2/', async (request) => ok(await loggingIn(request, () => web3mq.login(bodyOf(request.body)))));

    app.get('/notification/history/', async (request) => {
      const query = (request.query ?? {}) as Fields;
      const id = userid(query);
      const topic = text(query, 'topic', { ...ID_RULE, optional: true });
      const noticeType = text(query, 'notice_type', { max: 64, optional: true });
      if (noticeType !== undefined && !isNoticeType(noticeType)) {
        throw badRequest(
          'notice_type must be one of system.friend_request, system.agree_friend_request, system.group_invitation, subscription',
        );
      }
      const size = boundedInteger(query, 'size', 1, MAX_PAGE_SIZE);
      const page = boundedInteger(query, 'page', 1, MAX_PAGE);
      const time = timestamp(query);
      // Web3MQ's document signs userid + (notice_type, else topic) + timestamp; its SDK signs
      // userid + topic + notice_type + timestamp. Either is accepted.
      const documented = id + (noticeType ?? topic ?? '') + time.text;
      const sdk = id + (topic ?? '') + (noticeType ?? '') + time.text;
      // Reading again with the same signature is allowed: see SignatureUse.
      const caller = await authenticate(request, {
        userid: id,
        timestamp: time,
        signature: query.web3mq_signature,
        signedStrings: documented === sdk ? [documented] : [documented, sdk],
        use: 'read',
      });
      return ok(await web3mq.readHistory({ userId: caller.userId, topic, noticeType, page, size }));
    });

    app.post('/notification/status/', async (request) => {
      const fields = bodyOf(request.body);
      const messages = stringList(fields, 'messages', MAX_STATUS_MESSAGES, { max: 64 });
      const status = requiredText(fields, 'status', { max: 16 });
      if (status !== 'delivered' && status !== 'read') throw badRequest('status must be delivered or read');
      const caller = await signedBody(request, fields, (id, time) => id + status + time);
      await changeStatus(notifier, caller.userId, messages, status as NotificationStatus);
      return ok();
    });

    app.post('/contacts/add_friends/', async (request) => {
      const fields = bodyOf(request.body);
      const target = userid(fields, 'target_userid');
      const content = text(fields, 'content', { max: 1000, optional: true }) ?? '';
      const caller = await signedBody(request, fields, (id, time) => id + target + content + time);
      await sendFriendRequest(notifier, caller.userId, target, content, caller.signature);
      return ok();
    });

    app.post('/contacts/friend_requests/', async (request) => {
      const fields = bodyOf(request.body);
      const target = userid(fields, 'target_userid');
      const action = requiredText(fields, 'action', { max: 16 });
      if (action !== 'agree') throw badRequest('action must be agree');
      const caller = await signedBody(request, fields, (id, time) => id + action + target + time);
      await agreeFriendRequest(notifier, caller.userId, target, caller.signature);
      return ok();
    });

    app.post('/group_invitation/', async (request) => {
      const fields = bodyOf(request.body);
      const groupId = requiredText(fields, 'groupid', ID_RULE);
      const members = stringList(fields, 'members', 100, { max: 64 });
      const caller = await signedBody(request, fields, (id, time) => id + groupId + time);
      const { invited } = await inviteToGroup(notifier, caller.userId, groupId, members, caller.signature);
      return ok({ groupid: groupId, invited });
    });

    app.post('/create_topic/', async (request) => {
      const fields = bodyOf(request.body);
      const name = text(fields, 'topic_name', { max: 200, optional: true }) ?? '';
      const caller = await signedBody(request, fields, (id, time) => id + time);
      return ok(await createTopic(notifier, caller.userId, name));
    });

    app.post('/subscribe_topic/', async (request) => {
      const fields = bodyOf(request.body);
      const topicId = requiredText(fields, 'topicid', ID_RULE);
      const caller = await signedBody(request, fields, (id, time) => id + topicId + time);
      return ok(await subscribeTopic(notifier, caller.userId, topicId));
    });

    app.post('/publish_topic_message/', async (request) => {
      const fields = bodyOf(request.body);
      const topicId = requiredText(fields, 'topicid', ID_RULE);
      const title = requiredText(fields, 'title', { max: 200 });
      const content = requiredText(fields, 'content', { max: 4000 });
      const caller = await signedBody(request, fields, (id, time) => id + topicId + time);
      return ok(await publishTopicMessage(notifier, caller.userId, topicId, title, content, caller.signature));
    });
  };
}
