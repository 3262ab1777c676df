import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { errorStatus } from '../http.ts';
import { badRequest } from '../../errors.ts';
import type { ApiTokens, Devices, Friends, Users } from '../../chat/services.ts';
import { checkRegistration, checkStation, describeDevice, isPlatform, PLATFORMS } from '../../chat/devices.ts';
import { requireScope } from './auth.ts';
import { tokenRoutes } from './tokens.ts';

/** What the native API works with: built once per node in app.ts. */
export interface RestParts {
  users: Pick<Users, 'create' | 'list' | 'resolve'>;
  devices: Pick<Devices, 'deviceOf' | 'list' | 'bind' | 'register' | 'forgetBeyondLimit' | 'remove'>;
  friends: Pick<Friends, 'add'>;
  /** Scoped tokens: managed through /v1/tokens, checked on every call that carries one. */
  apiTokens: Pick<ApiTokens, 'create' | 'list' | 'revoke' | 'authenticate'>;
  /** The root credential. */
  adminToken: string;
  vapidPublicKey: string;
  /** Gives an existing user a Web3MQ main key (the Web3MQ API's own checks and answer). */
  attachWeb3mqKey(userId: string, fields: Record<string, unknown>): Promise<unknown>;
  log: Logger;
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
    app.register(tokenRoutes(parts));

    app.post('/users', async (request, reply) => {
      await requireScope(parts, request, 'users:write');
      const b = body(request);
      const created = await users.create({
        email: text(b, 'email')!,
        name: text(b, 'name')!,
        nick: text(b, 'nick', false),
      });
      return reply.status(201).send(created);
    });

    app.get('/users', async (request) => {
      await requireScope(parts, request, 'users:read');
      return { users: await users.list() };
    });

    app.post('/friends', async (request, reply) => {
      await requireScope(parts, request, 'users:write');
      const b = body(request);
      const a = await users.resolve(text(b, 'a')!);
      const c = await users.resolve(text(b, 'b')!);
      await parts.friends.add(a.id, c.id);
      return reply.status(201).send({ a: a.id, b: c.id });
    });

    // Gives an existing user (an Ozeki user, say) a Web3MQ main key, so they can log in there too.
    app.post<{ Params: { id: string } }>('/users/:id/web3mq-keys', async (request, reply) => {
      await requireScope(parts, request, 'users:write');
      const user = await users.resolve(request.params.id);
      return reply.status(201).send(await parts.attachWeb3mqKey(user.id, body(request)));
    });

    app.get<{ Params: { id: string } }>('/users/:id/devices', async (request) => {
      await requireScope(parts, request, 'users:read', { selfUserId: request.params.id });
      const user = await users.resolve(request.params.id);
      return { devices: await devices.list(user.id) };
    });

    // Registers a device's platform and push token (pushtoken null or "" removes it). The admin
    // or a devices:write token (a backend using Herald as its push gateway) may create the
    // device; a user only updates a station they have logged in with.
    app.put<{ Params: { id: string; station: string } }>('/users/:id/devices/:station', async (request) => {
      const caller = await requireScope(parts, request, 'devices:write', { selfUserId: request.params.id });
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
      if (caller.kind !== 'user') {
        await devices.bind(station, user.id, platform);
        await devices.forgetBeyondLimit(user.id, station);
      }
      const device = await devices.register(station, user.id, registration);
      return { device: describeDevice(device) };
    });

    // Public: a browser needs it (as applicationServerKey) before anyone has logged in.
    app.get('/webpush/vapid-public-key', async () => ({ publickey: parts.vapidPublicKey }));

    app.delete<{ Params: { id: string; station: string } }>('/users/:id/devices/:station', async (request, reply) => {
      await requireScope(parts, request, 'devices:write', { selfUserId: request.params.id });
      const station = request.params.station.toLowerCase();
      // Its live connections end on every node, not only on the one that took the call.
      await devices.remove(request.params.id, station);
      return reply.status(204).send();
    });
  };
}
