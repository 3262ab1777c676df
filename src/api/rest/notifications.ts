import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { badRequest } from '../../errors.ts';
import type { Gateway, Users } from '../../chat/services.ts';
import { MAX_RECIPIENTS } from '../../chat/sends.ts';
import { isCustomKind, toFrame, type CustomKind } from '../../model/notification.ts';
import { ErrorShape, SECURITY } from './schemas.ts';
import { sendCost, type CallLimits } from '../../limits/limiter.ts';

/*
 * The push gateway for other backends: send notifications, page a user's feed, mark it read.
 * Limits keep every push within what the providers take (APNs and Web Push: 4 KB).
 */

export const LIMITS = {
  title: 200,
  body: 500,
  /** Bytes of the JSON text of `data`; it reaches the feed and the live channels. */
  data: 4096,
  /** Bytes of the JSON text of `data.push`, the string keys every push carries too. */
  dataPush: 512,
  conversationid: 200,
  /** Seconds: FCM keeps a message four weeks at most. */
  ttl: 28 * 24 * 60 * 60,
  idempotencyKey: 255,
  page: 1000,
} as const;

export interface NotificationRouteParts {
  gateway: Gateway;
  users: Pick<Users, 'resolve'>;
  /**
   * Refuses a caller who may not send through the gateway (the admin, or a token with
   * notifications:send); says who it is, for the idempotency keys.
   */
  authorizeSend(request: FastifyRequest): Promise<{ caller: string }>;
  /** Refuses a caller who may not see (`read`) or mark (`mark`) this user's feed. */
  authorizeFeed(request: FastifyRequest, userId: string, access: 'read' | 'mark'): Promise<void>;
  /** Sends per caller, costed by recipients (limits/limiter.ts, sendCost). */
  limits: Pick<CallLimits, 'enforce'>;
}

const SendBody = Type.Object(
  {
    to: Type.Array(Type.String({ minLength: 1, maxLength: 254 }), {
      minItems: 1,
      maxItems: MAX_RECIPIENTS,
      description: 'User ids or e-mail addresses',
    }),
    title: Type.String({ minLength: 1, maxLength: LIMITS.title, description: 'Who and how many, e.g. "2 invoices from Acme"' }),
    body: Type.Optional(Type.String({ maxLength: LIMITS.body })),
    data: Type.Optional(Type.Object({}, { additionalProperties: true, description: `At most ${LIMITS.data} bytes of JSON` })),
    kind: Type.Optional(Type.String({ maxLength: 64, description: '`message` (the default) or a namespaced kind such as `app.invoice`' })),
    conversationid: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.conversationid })),
    silent: Type.Optional(Type.Boolean()),
    badge: Type.Optional(
      Type.Union([Type.Literal('increment'), Type.Literal('keep'), Type.Integer({ minimum: 0, maximum: 1_000_000 })], {
        description: '`increment` (the default), `keep`, or the badge to show',
      }),
    ),
    ttl: Type.Optional(
      Type.Integer({ minimum: 0, maximum: LIMITS.ttl, description: 'Seconds a push is worth delivering (default: a day)' }),
    ),
    priority: Type.Optional(Type.Union([Type.Literal('high'), Type.Literal('normal')])),
  },
  { additionalProperties: false },
);
type SendBody = Static<typeof SendBody>;

const SendAnswer = Type.Object({
  notifications: Type.Array(Type.Object({ to: Type.String(), userid: Type.String(), id: Type.String(), seq: Type.Integer() })),
  unknown: Type.Array(Type.String()),
});

const Nullable = <T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer>>(schema: T) =>
  Type.Union([schema, Type.Null()]);

const FeedItem = Type.Object({
  type: Type.Union([Type.Literal('notification'), Type.Literal('clean')]),
  seq: Type.Integer(),
  id: Type.String(),
  kind: Type.Optional(Type.String()),
  conversationid: Nullable(Type.String()),
  sender: Type.Optional(Nullable(Type.String())),
  title: Type.String(),
  body: Type.Optional(Type.String()),
  badge: Type.Integer(),
  silent: Type.Optional(Type.Boolean()),
  created: Type.Integer(),
  data: Type.Optional(Type.Object({}, { additionalProperties: true })),
});

const UserParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 254, description: 'User id or e-mail address' }) });

const FeedQuery = Type.Object({
  after: Type.Optional(
    Type.Integer({ minimum: 0, default: 0, description: 'The sequence number the caller has; the page starts after it' }),
  ),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.page, default: 100 })),
});

const FeedAnswer = Type.Object({
  notifications: Type.Array(FeedItem),
  next: Nullable(Type.Integer({ description: 'The `after` of the next page; null at the newest notification' })),
  head: Type.Object({ seq: Type.Integer(), badge: Type.Integer() }),
});

const ReadBody = Type.Object(
  {
    upto: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Read every conversation whose newest notification is at or before this seq' }),
    ),
    conversationid: Type.Optional(Type.String({ minLength: 1, maxLength: LIMITS.conversationid, description: 'Read one conversation' })),
  },
  { additionalProperties: false },
);

const ReadAnswer = Type.Object({
  badge: Type.Integer(),
  read: Type.Integer({ description: 'How many unread notifications were taken off the badge' }),
  seq: Nullable(Type.Integer({ description: 'The clean notification sent to every device; null when nothing was unread' })),
});

/** The idempotency key of a call, when it has one. */
function idempotencyKey(request: FastifyRequest): string | undefined {
  const value = request.headers['idempotency-key'];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '' || value.length > LIMITS.idempotencyKey) {
    throw badRequest(`Idempotency-Key: must be one header of 1 to ${LIMITS.idempotencyKey} characters`);
  }
  return value.trim();
}

/** What the schema cannot say: the kind's namespace and the size of `data`. */
function checkSend(body: SendBody): void {
  if (body.kind !== undefined && body.kind !== 'message' && !isCustomKind(body.kind)) {
    throw badRequest('kind: must be "message" or a namespaced kind of your own such as "app.invoice" (lower case, not "system.…")');
  }
  if (body.data === undefined) return;
  if (Buffer.byteLength(JSON.stringify(body.data)) > LIMITS.data) throw badRequest(`data: must be at most ${LIMITS.data} bytes of JSON`);
  const push = (body.data as Record<string, unknown>).push;
  if (push === undefined) return;
  const strings =
    push !== null && typeof push === 'object' && !Array.isArray(push) && Object.values(push).every((v) => typeof v === 'string');
  if (!strings || Buffer.byteLength(JSON.stringify(push)) > LIMITS.dataPush) {
    throw badRequest(`data.push: must be an object of string values, at most ${LIMITS.dataPush} bytes of JSON (every push carries it)`);
  }
}

export function notificationRoutes(app: FastifyInstance, parts: NotificationRouteParts): void {
  const { gateway, users } = parts;
  // Who may call is settled before the request is validated: a stranger learns nothing from a 400.
  const senders = new WeakMap<FastifyRequest, string>();
  const mayRead = (request: FastifyRequest) => parts.authorizeFeed(request, (request.params as { id: string }).id, 'read');
  const mayMark = (request: FastifyRequest) => parts.authorizeFeed(request, (request.params as { id: string }).id, 'mark');

  app.post<{ Body: SendBody }>(
    '/notifications',
    {
      preValidation: async (request) => void senders.set(request, (await parts.authorizeSend(request)).caller),
      schema: {
        summary: 'Send a notification to users, on every device of theirs',
        tags: ['notifications'],
        security: SECURITY.admin,
        headers: Type.Object({
          'idempotency-key': Type.Optional(
            Type.String({
              maxLength: LIMITS.idempotencyKey,
              description: 'A retry with the same key and body answers the first answer and creates nothing',
            }),
          ),
        }),
        body: SendBody,
        response: { 200: SendAnswer, 202: SendAnswer, 400: ErrorShape, 401: ErrorShape, 403: ErrorShape, 422: ErrorShape, 429: ErrorShape },
      },
    },
    async (request, reply) => {
      const caller = senders.get(request)!;
      const body = request.body;
      checkSend(body);
      const key = idempotencyKey(request);
      // Only a well-formed send pays: a refused one costs the caller nothing but the address's token.
      parts.limits.enforce('send', caller, sendCost(body.to.length));
      const idempotent = key
        ? {
            caller,
            key,
            requestHash: createHash('sha256')
              .update(request.rawBody ?? '')
              .digest('hex'),
          }
        : undefined;
      const { answer, replayed } = await gateway.send(
        {
          to: body.to,
          title: body.title,
          body: body.body,
          data: body.data as Record<string, unknown> | undefined,
          kind: body.kind as 'message' | CustomKind | undefined,
          conversationId: body.conversationid,
          silent: body.silent,
          badge: body.badge,
          push: body.ttl !== undefined || body.priority !== undefined ? { ttl: body.ttl, priority: body.priority } : undefined,
        },
        idempotent,
      );
      if (replayed) reply.header('idempotent-replayed', 'true');
      // Already plain JSON of strings and numbers: V8's stringify writes thousands of entries
      // faster than the schema's serializer, which checks every character of every id.
      return reply.status(202).type('application/json; charset=utf-8').send(JSON.stringify(answer));
    },
  );

  app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof FeedQuery> }>(
    '/users/:id/notifications',
    {
      preValidation: mayRead,
      schema: {
        summary: "Page a user's feed, oldest first",
        security: SECURITY.selfOrAdmin,
        tags: ['notifications'],
        params: UserParams,
        querystring: FeedQuery,
        response: { 200: FeedAnswer, 400: ErrorShape, 401: ErrorShape, 403: ErrorShape, 404: ErrorShape },
      },
    },
    async (request) => {
      const user = await users.resolve(request.params.id);
      const page = await gateway.page(user.id, request.query.after ?? 0, request.query.limit ?? 100);
      return { notifications: page.notifications.map(toFrame), next: page.next, head: page.head };
    },
  );

  app.post<{ Params: Static<typeof UserParams>; Body: Static<typeof ReadBody> }>(
    '/users/:id/notifications/read',
    {
      preValidation: mayMark,
      schema: {
        summary: 'Mark notifications read; the clean push with the new badge goes to every device',
        security: SECURITY.selfOrAdmin,
        tags: ['notifications'],
        params: UserParams,
        body: ReadBody,
        response: { 200: ReadAnswer, 400: ErrorShape, 401: ErrorShape, 403: ErrorShape, 404: ErrorShape },
      },
    },
    async (request) => {
      const { upto, conversationid } = request.body;
      if ((upto === undefined) === (conversationid === undefined)) throw badRequest('give exactly one of upto and conversationid');
      const user = await users.resolve(request.params.id);
      return gateway.read(user.id, upto !== undefined ? { upto } : { conversationId: conversationid! });
    },
  );
}
