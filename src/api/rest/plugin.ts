import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { errorStatus, sameSecret } from '../http.ts';
import { badRequest, forbidden, unauthorized } from '../../errors.ts';
import type { Devices, Friends, Gateway, Users } from '../../chat/services.ts';
import { userIdOf } from '../../chat/ids.ts';
import { notificationRoutes } from './notifications.ts';
import { checkRegistration, checkStation, describeDevice, isPlatform, PLATFORMS } from '../../chat/devices.ts';

/** What the native API works with: built once per node in app.ts. */
export interface RestParts {
  users: Pick<Users, 'create' | 'list' | 'resolve'>;
  devices: Pick<Devices, 'deviceOf' | 'list' | 'bind' | 'register' | 'forgetBeyondLimit' | 'remove'>;
  friends: Pick<Friends, 'add'>;
  gateway: Gateway;
  /** The root credential. */
  adminToken: string;
  vapidPublicKey: string;
  /** Gives an existing user a Web3MQ main key (the Web3MQ API's own checks and answer). */
  attachWeb3mqKey(userId: string, fields: Record<string, unknown>): Promise<unknown>;
  log: Logger;
}

/** Who is calling the native API: the admin (bearer token) or a user (by a station of theirs). */
export type RestCaller = { kind: 'admin' } | { kind: 'user'; userId: string; station: string };

export async function restCaller(parts: RestParts, request: FastifyRequest): Promise<RestCaller> {
  const auth = request.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) {
    if (sameSecret(auth.slice(7).trim(), parts.adminToken)) return { kind: 'admin' };
    throw unauthorized('the bearer token is not the admin token');
  }
  const station = request.headers['ozeki-station'];
  if (typeof station === 'string' && station !== '') {
    const device = await parts.devices.deviceOf(station.toLowerCase());
    if (!device) throw unauthorized('unknown station; log in first');
    return { kind: 'user', userId: device.user_id, station: device.station };
  }
  throw unauthorized('send Authorization: Bearer <admin token> or the Ozeki-Station header of a logged-in device');
}

export async function requireAdmin(parts: RestParts, request: FastifyRequest): Promise<void> {
  const caller = await restCaller(parts, request);
  if (caller.kind !== 'admin') throw forbidden('this call needs the admin token');
}

/** A user may act on their own account; the admin on any. */
export async function requireSelfOrAdmin(parts: RestParts, request: FastifyRequest, userId: string): Promise<RestCaller> {
  const caller = await restCaller(parts, request);
  if (caller.kind === 'user' && caller.userId !== userId) throw forbidden('you may only see your own account');
  return caller;
}

function body(request: FastifyRequest): Record<string, unknown> {
  const value = request.body;
  if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest('the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function text(value: Record<string, unknown>, name: string, required = true): string | undefined {
  const v = value[name];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v === '') throw badRequest(`${name} must be a non-empty string`);
  return v;
}

export function sendError(reply: FastifyReply, error: unknown, log: Logger) {
  const status = errorStatus(error);
  if (status >= 500) log.error({ err: error }, 'request failed');
  return reply.status(status).send({ error: status >= 500 ? 'internal error' : (error as Error).message });
}

/** Herald's native API: administration, and the push gateway for other chat backends. */
export function restApi(parts: RestParts): FastifyPluginAsync {
  return async (app) => {
    app.setErrorHandler((error, _request, reply) => sendError(reply, error, parts.log));
    const { users, devices } = parts;

    app.post('/users', async (request, reply) => {
      await requireAdmin(parts, request);
      const b = body(request);
      const created = await users.create({
        email: text(b, 'email')!,
        name: text(b, 'name')!,
        nick: text(b, 'nick', false),
      });
      return reply.status(201).send(created);
    });

    app.get('/users', async (request) => {
      await requireAdmin(parts, request);
      return { users: await users.list() };
    });

    app.post('/friends', async (request, reply) => {
      await requireAdmin(parts, request);
      const b = body(request);
      const a = await users.resolve(text(b, 'a')!);
      const c = await users.resolve(text(b, 'b')!);
      await parts.friends.add(a.id, c.id);
      return reply.status(201).send({ a: a.id, b: c.id });
    });

    // Gives an existing user (an Ozeki user, say) a Web3MQ main key, so they can log in there too.
    app.post<{ Params: { id: string } }>('/users/:id/web3mq-keys', async (request, reply) => {
      await requireAdmin(parts, request);
      const user = await users.resolve(request.params.id);
      return reply.status(201).send(await parts.attachWeb3mqKey(user.id, body(request)));
    });

    app.get<{ Params: { id: string } }>('/users/:id/devices', async (request) => {
      await requireSelfOrAdmin(parts, request, request.params.id);
      const user = await users.resolve(request.params.id);
      return { devices: await devices.list(user.id) };
    });

    // Registers a device's platform and push token (pushtoken null or "" removes it). The admin
    // (a backend using Herald as its push gateway) may create the device; a user only
    // updates a station they have logged in with.
    app.put<{ Params: { id: string; station: string } }>('/users/:id/devices/:station', async (request) => {
      const caller = await requireSelfOrAdmin(parts, request, request.params.id);
      const b = body(request);
      const platform = b.platform;
      if (!isPlatform(platform)) throw badRequest(`platform must be one of ${PLATFORMS.join(', ')}`);
      const pushtoken = b.pushtoken;
      if (pushtoken !== undefined && pushtoken !== null && (typeof pushtoken !== 'string' || pushtoken.length > 4096)) {
        throw badRequest('pushtoken must be a string of at most 4096 characters, or null to remove it');
      }
      const station = checkStation(request.params.station);
      const user = await users.resolve(request.params.id);
      const registration = { platform, pushToken: pushtoken as string | null | undefined, pushSubscription: b.pushsubscription };
      checkRegistration(registration);
      if (caller.kind === 'admin') {
        await devices.bind(station, user.id, platform);
        await devices.forgetBeyondLimit(user.id, station);
      }
      const device = await devices.register(station, user.id, registration);
      return { device: describeDevice(device) };
    });

    notificationRoutes(app, {
      gateway: parts.gateway,
      users,
      async authorizeSend(request) {
        await requireAdmin(parts, request);
        return { caller: 'admin' };
      },
      async authorizeFeed(request, user) {
        await requireSelfOrAdmin(parts, request, user.includes('@') ? userIdOf(user) : user.toLowerCase());
      },
    });

    // Public: a browser needs it (as applicationServerKey) before anyone has logged in.
    app.get('/webpush/vapid-public-key', async () => ({ publickey: parts.vapidPublicKey }));

    app.delete<{ Params: { id: string; station: string } }>('/users/:id/devices/:station', async (request, reply) => {
      await requireSelfOrAdmin(parts, request, request.params.id);
      const station = request.params.station.toLowerCase();
      // Its live connections end on every node, not only on the one that took the call.
      await devices.remove(request.params.id, station);
      return reply.status(204).send();
    });
  };
}
