import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { type Static, Type } from 'typebox';
import { errorStatus, serverErrorMessage } from '../http.ts';
import type { AdminTokenHash } from '../../admin-token.ts';
import { notFound } from '../../errors.ts';
import type { ApiTokens, Devices, Friends, Gateway, Preferences, Users } from '../../chat/services.ts';
import { userIdNamed } from '../../chat/ids.ts';
import { notificationRoutes } from './notifications.ts';
import { preferenceRoutes } from './preferences.ts';
import { checkRegistration, checkStation, describeDevice, PLATFORMS } from '../../chat/devices.ts';
import { collectRoutes, openApiDocument } from './openapi.ts';
import { isValidationError, NoContent, NonEmptyString, SECURITY, validationMessage, validatorCompiler } from './schemas.ts';
import { requireScope, type RestCaller, type Scope } from './auth.ts';
import { tokenRoutes } from './tokens.ts';
import type { CallLimits } from '../../limits/limiter.ts';
import type { TestPushResult } from '../../notify/push-test.ts';
import type { NotificationWatcher } from '../../notify/watchers.ts';
import { statsRoutes, type NodeStats } from './stats.ts';
import { OpenTails, tailRoutes } from './tail.ts';

/** What the native API works with: built once per node in app.ts. */
export interface RestParts {
  users: Pick<Users, 'create' | 'list' | 'resolve' | 'resetApiKey' | 'delete'>;
  devices: Pick<Devices, 'deviceOf' | 'list' | 'bind' | 'register' | 'forgetBeyondLimit' | 'remove'>;
  friends: Pick<Friends, 'add' | 'remove'>;
  gateway: Gateway;
  /** Scoped tokens: managed through /v1/tokens, checked on every call that carries one. */
  apiTokens: Pick<ApiTokens, 'create' | 'list' | 'revoke' | 'authenticate'>;
  /** The root credential, as its SHA-256. */
  adminTokenHash: AdminTokenHash;
  vapidPublicKey: string;
  /** Gives an existing user a Web3MQ main key (the Web3MQ API's own checks and answer). */
  attachWeb3mqKey(userId: string, fields: Record<string, unknown>): Promise<unknown>;
  /** Refused credentials, station and user calls (auth.ts), and the gateway's sends per caller. */
  limits: CallLimits;
  /** Users' alert preferences (/users/:id/preferences). */
  preferences: Preferences;
  /** The console's numbers (GET /v1/stats). */
  stats(): Promise<NodeStats>;
  /** One push straight to the device's provider, and its answer (as `herald push test`). */
  testPush(station: string): Promise<TestPushResult>;
  /** Every committed notification, for the live tail; the answer stops watching. */
  watchNotifications(watcher: NotificationWatcher): () => void;
  log: Logger;
}

export function sendError(reply: FastifyReply, error: unknown, log: Logger) {
  if (isValidationError(error)) {
    return reply
      .status(400)
      .send({ error: validationMessage(error.validation, error.validationContext, reply.request.routeOptions.schema) });
  }
  const status = errorStatus(error);
  if (status >= 500) log.error({ err: error }, 'request failed');
  return reply.status(status).send({ error: status >= 500 ? serverErrorMessage(error, status) : (error as Error).message });
}

/** The user id the path's `:id` names (an e-mail address stands for its user). */
function pathUser(request: FastifyRequest): string {
  const { id } = request.params as { id: string };
  return userIdNamed(id);
}

/*
 * The shapes of the answers. Fastify writes each answer through its response schema, so a
 * field missing here would be missing on the wire: these list every field the handlers return.
 */

const UserId = Type.String({ description: 'an e-mail address or a user id (the MD5 of the address)', minLength: 1 });
const Station = Type.String({ description: "the device's Ozeki-Station: 32 hexadecimal characters", minLength: 1 });
const UserParams = Type.Object({ id: UserId });
const DeviceParams = Type.Object({ id: UserId, station: Station });
const FriendParams = Type.Object({ id: UserId, friend: UserId });

const Device = Type.Object({
  station: Type.String(),
  platform: Type.String(),
  push: Type.Union([
    Type.Object({
      provider: Type.String({ description: 'apns, fcm or webpush' }),
      enabled: Type.Boolean({ description: 'false once the provider refused the token' }),
      disabledat: Type.Union([Type.Integer(), Type.Null()], { description: 'unix milliseconds' }),
      disabledreason: Type.Union([Type.String(), Type.Null()]),
    }),
    Type.Null(),
  ]),
  ackedseq: Type.Integer({ description: 'the newest notification the device acknowledged' }),
  deliveredseq: Type.Integer({ description: 'the newest notification handed to the device' }),
  lastseen: Type.Integer({ description: 'unix milliseconds' }),
  created: Type.Integer({ description: 'unix milliseconds' }),
});

const NewUser = Type.Object({
  email: NonEmptyString({ description: 'the e-mail address; the user id is its MD5' }),
  name: NonEmptyString({ maxLength: 200 }),
  nick: Type.Optional(NonEmptyString({ maxLength: 100 })),
});

const DeviceRegistration = Type.Object({
  platform: Type.Enum([...PLATFORMS]),
  pushtoken: Type.Optional(
    Type.Union([Type.String({ maxLength: 4096 }), Type.Null()], {
      description: 'APNs or FCM token of an ios, mac or android device; null or "" removes it',
    }),
  ),
  // Checked by the same rules as Ozeki's chatdevice/register (chat/push-subscription.ts), so
  // both APIs refuse a subscription in the same words; the schema only describes it.
  pushsubscription: Type.Optional(
    Type.Unknown({
      description:
        "a browser's PushSubscription.toJSON(): {endpoint, keys: {p256dh, auth}}, or that object as JSON text (platform browser only); null removes it",
      examples: [{ endpoint: 'https://push.example.net/send/abc', keys: { p256dh: 'BOr…(base64url)', auth: 'k3b…(base64url)' } }],
    }),
  ),
});

const Web3mqKey = Type.Object({
  pubkey: Type.String({ description: 'the ed25519 main key: 64 lowercase hexadecimal characters' }),
  did_type: Type.Optional(Type.String({ description: 'herald (the default) or eth' })),
  did_value: Type.Optional(Type.String({ description: 'the DID value; for herald the user id, for eth an address' })),
});

const Web3mqAccount = Type.Object({
  userid: Type.String(),
  did_type: Type.String(),
  did_value: Type.String(),
  main_pubkey: Type.String(),
  pubkey_type: Type.String(),
});

/** Herald's native API: administration, and the push gateway for other chat backends. */
export function restApi(parts: RestParts): FastifyPluginAsync {
  // The node's live tails, whichever of its servers (HTTP, HTTPS) took them.
  const tails = new OpenTails();
  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();
    app.setValidatorCompiler(validatorCompiler);
    app.setErrorHandler((error, _request, reply) => sendError(reply, error, parts.log));
    const documented = collectRoutes(app);
    const { users, devices } = parts;

    // Who may call is settled before the request is validated: a stranger learns nothing from a 400.
    const callers = new WeakMap<FastifyRequest, RestCaller>();
    /** The admin, or a token with `scope`. */
    const needs = (scope: Scope) => async (request: FastifyRequest) => {
      callers.set(request, await requireScope(parts, request, scope));
    };
    /** The admin, a token with `scope`, or the user of the path's `:id` through a station of theirs. */
    const needsOrSelf = (scope: Scope) => async (request: FastifyRequest) => {
      callers.set(request, await requireScope(parts, request, scope, { selfUserId: pathUser(request) }));
    };

    app.register(tokenRoutes(parts));

    let openApiText: string | undefined;
    app.get(
      '/openapi.json',
      {
        schema: {
          summary: 'This document: every /v1 call, its parameters and answers (OpenAPI 3.1)',
          tags: ['meta'],
          security: SECURITY.public,
          response: { 200: Type.Unknown({ description: 'an OpenAPI 3.1 document' }) },
        },
      },
      async (_request, reply) => {
        // Every route is registered before the first request, so the document is made once.
        openApiText ??= JSON.stringify(openApiDocument(documented, { title: 'Herald native API', version: '1' }));
        return reply.type('application/json; charset=utf-8').send(openApiText);
      },
    );

    app.post(
      '/users',
      {
        preValidation: needs('users:write'),
        schema: {
          summary: 'Create a user',
          tags: ['users'],
          security: SECURITY.admin,
          body: NewUser,
          response: { 201: Type.Object({ userid: Type.String(), apikey: Type.String({ description: "the user's Ozeki API key" }) }) },
        },
      },
      async (request, reply) => {
        const { email, name, nick } = request.body;
        return reply.status(201).send(await users.create({ email, name, nick }));
      },
    );

    app.get(
      '/users',
      {
        preValidation: needs('users:read'),
        schema: {
          summary: 'List the users, oldest first, or search them',
          tags: ['users'],
          security: SECURITY.admin,
          querystring: Type.Object({
            search: Type.Optional(
              Type.String({ minLength: 1, maxLength: 200, description: 'part of the e-mail address, name or nick, in any case' }),
            ),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
            after: Type.Optional(Type.String({ maxLength: 64, description: 'the `next` of the previous page' })),
          }),
          response: {
            200: Type.Object({
              users: Type.Array(
                Type.Object({
                  userid: Type.String(),
                  email: Type.String(),
                  name: Type.String(),
                  nick: Type.String(),
                  availability: Type.String(),
                  unread: Type.Integer({ description: 'the badge: unread notifications in all conversations' }),
                  created_at: Type.Integer({ description: 'unix milliseconds' }),
                }),
              ),
              next: Type.Union([Type.String(), Type.Null()], { description: 'the `after` of the next page; null at the last' }),
            }),
          },
        },
      },
      async (request) => users.list(request.query),
    );

    // A new API key for a user who lost theirs or whose key leaked: the old one stops working
    // for logins at once; the user's stations stay bound.
    app.post(
      '/users/:id/apikey',
      {
        preValidation: needs('users:write'),
        schema: {
          summary: 'Give a user a new API key (the old one stops working)',
          tags: ['users'],
          security: SECURITY.admin,
          params: UserParams,
          response: {
            200: Type.Object({
              userid: Type.String(),
              apikey: Type.String({ description: "the user's new Ozeki API key: shown in this answer only" }),
            }),
          },
        },
      },
      async (request) => users.resetApiKey(request.params.id),
    );

    app.post(
      '/friends',
      {
        preValidation: needs('users:write'),
        schema: {
          summary: 'Make two users friends of each other',
          tags: ['users'],
          security: SECURITY.admin,
          body: Type.Object({ a: UserId, b: UserId }),
          response: { 201: Type.Object({ a: Type.String({ description: 'user id' }), b: Type.String({ description: 'user id' }) }) },
        },
      },
      async (request, reply) => {
        const a = await users.resolve(request.body.a);
        const b = await users.resolve(request.body.b);
        await parts.friends.add(a.id, b.id);
        return reply.status(201).send({ a: a.id, b: b.id });
      },
    );

    app.delete(
      '/users/:id/friends/:friend',
      {
        preValidation: needs('users:write'),
        schema: {
          summary: 'End the friendship of two users, both ways',
          tags: ['users'],
          security: SECURITY.admin,
          params: FriendParams,
          response: { 204: NoContent },
        },
      },
      async (request, reply) => {
        const a = await users.resolve(request.params.id);
        const b = await users.resolve(request.params.friend);
        await parts.friends.remove(a.id, b.id);
        return reply.status(204).send(null);
      },
    );

    app.delete(
      '/users/:id',
      {
        preValidation: needs('users:write'),
        schema: {
          summary: 'Delete a user with their devices, feed, outbox, friendships and memberships',
          tags: ['users'],
          security: SECURITY.admin,
          params: UserParams,
          response: { 204: NoContent },
        },
      },
      async (request, reply) => {
        // Their devices' live connections end on every node, as when a device is removed.
        await users.delete(request.params.id);
        return reply.status(204).send(null);
      },
    );

    // Gives an existing user (an Ozeki user, say) a Web3MQ main key, so they can log in there too.
    app.post(
      '/users/:id/web3mq-keys',
      {
        preValidation: needs('users:write'),
        schema: {
          summary: 'Give a user a Web3MQ main key',
          tags: ['users', 'web3mq'],
          security: SECURITY.admin,
          params: UserParams,
          body: Web3mqKey,
          response: { 201: Web3mqAccount },
        },
      },
      async (request, reply) => {
        const user = await users.resolve(request.params.id);
        return reply.status(201).send((await parts.attachWeb3mqKey(user.id, request.body)) as Static<typeof Web3mqAccount>);
      },
    );

    app.get(
      '/users/:id/devices',
      {
        preValidation: needsOrSelf('users:read'),
        schema: {
          summary: "List a user's devices",
          tags: ['devices'],
          security: SECURITY.selfOrAdmin,
          params: UserParams,
          response: { 200: Type.Object({ devices: Type.Array(Device) }) },
        },
      },
      async (request) => {
        const user = await users.resolve(request.params.id);
        return { devices: await devices.list(user.id) };
      },
    );

    // Registers a device's platform and push token (pushtoken null or "" removes it). The admin
    // (a backend using Herald as its push gateway) may create the device; a user only
    // updates a station they have logged in with.
    app.put(
      '/users/:id/devices/:station',
      {
        preValidation: needsOrSelf('devices:write'),
        schema: {
          summary: "Register a device's platform and push token or Web Push subscription",
          tags: ['devices'],
          security: SECURITY.selfOrAdmin,
          params: DeviceParams,
          body: DeviceRegistration,
          response: { 200: Type.Object({ device: Device }) },
        },
      },
      async (request) => {
        const caller = callers.get(request)!;
        const { platform, pushtoken, pushsubscription } = request.body;
        const station = checkStation(request.params.station);
        const user = await users.resolve(request.params.id);
        const registration = { platform, pushToken: pushtoken, pushSubscription: pushsubscription };
        checkRegistration(registration);
        if (caller.kind !== 'user') {
          await devices.bind(station, user.id, platform);
          await devices.forgetBeyondLimit(user.id, station);
        }
        const device = await devices.register(station, user.id, registration);
        return { device: describeDevice(device) };
      },
    );

    notificationRoutes(app, {
      gateway: parts.gateway,
      limits: parts.limits,
      users,
      async authorizeSend(request) {
        const caller = await requireScope(parts, request, 'notifications:send');
        return { caller: caller.kind === 'token' ? `token:${caller.tokenId}` : 'admin' };
      },
      async authorizeFeed(request, _user, access) {
        await requireScope(parts, request, access === 'read' ? 'feed:read' : 'notifications:send', { selfUserId: pathUser(request) });
      },
    });

    preferenceRoutes(app, {
      preferences: parts.preferences,
      users,
      authorize: (access) => needsOrSelf(access === 'read' ? 'users:read' : 'users:write'),
    });

    // Public: a browser needs it (as applicationServerKey) before anyone has logged in.
    app.get(
      '/webpush/vapid-public-key',
      {
        schema: {
          summary: 'The VAPID public key, for pushManager.subscribe',
          tags: ['webpush'],
          security: SECURITY.public,
          response: { 200: Type.Object({ publickey: Type.String({ description: 'base64url, the applicationServerKey' }) }) },
        },
      },
      async () => ({ publickey: parts.vapidPublicKey }),
    );

    app.delete(
      '/users/:id/devices/:station',
      {
        preValidation: needsOrSelf('devices:write'),
        schema: {
          summary: 'Forget a device; its live connections are closed',
          tags: ['devices'],
          security: SECURITY.selfOrAdmin,
          params: DeviceParams,
          response: { 204: NoContent },
        },
      },
      async (request, reply) => {
        const station = request.params.station.toLowerCase();
        // Its live connections end on every node, not only on the one that took the call.
        await devices.remove(pathUser(request), station);
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/users/:id/devices/:station/test-push',
      {
        preValidation: needs('devices:write'),
        schema: {
          summary: "Send one test push straight to the device's provider and answer with the provider's answer",
          description:
            'Not through the outbox, and the device is left as it is, even when the provider calls its token dead (as `herald push test`).',
          tags: ['devices', 'console'],
          security: SECURITY.admin,
          params: DeviceParams,
          response: {
            200: Type.Object({
              station: Type.String(),
              provider: Type.String({ description: 'apns, fcm or webpush' }),
              outcome: Type.Object(
                {
                  kind: Type.Union([Type.Literal('delivered'), Type.Literal('retry'), Type.Literal('dead'), Type.Literal('failed')]),
                  detail: Type.Optional(Type.String({ description: "the provider's acceptance, such as `200 apns-id …`" })),
                  reason: Type.Optional(Type.String({ description: "the provider's refusal, such as `410 Unregistered`" })),
                  afterMs: Type.Optional(Type.Integer({ description: 'the Retry-After the provider asked for' })),
                },
                { description: "the provider's answer in Herald's vocabulary" },
              ),
            }),
          },
        },
      },
      async (request) => {
        const user = await users.resolve(request.params.id);
        const station = checkStation(request.params.station);
        const device = await devices.deviceOf(station);
        if (!device || device.user_id !== user.id) throw notFound(`${request.params.id} has no device with station ${station}`);
        return parts.testPush(station);
      },
    );

    statsRoutes(app, { stats: parts.stats, authorize: needs('stats:read') });
    tailRoutes(app, { watchNotifications: parts.watchNotifications, authorize: needs('feed:read') }, tails);
  };
}
