import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { HeraldError } from '../../errors.ts';
import type { MatrixDevice, MatrixGateway, MatrixNotification } from '../../chat/matrix-pushers.ts';
import { errorStatus, serverErrorMessage } from '../http.ts';

/*
 * The Matrix Push Gateway API (spec.matrix.org, "Push Gateway API"): POST /notify under
 * /_matrix/push/v1. Homeservers do not authenticate to push gateways, so what one request
 * may ask for is bounded here; errors take the Matrix shape {errcode, error}.
 */

export interface MatrixParts {
  gateway: Pick<MatrixGateway, 'configured' | 'notify'>;
  log: Logger;
}

/** Devices one notify may name (a homeserver sends one pusher per request in practice). */
export const MAX_DEVICES = 100;
/** The longest pushkey taken: FCM tokens are the longest kind (the client-server API allows 512 bytes). */
const MAX_PUSHKEY = 4096;
const MAX_APP_ID = 256;
/** Matrix identifiers are at most 255 bytes (client-server API, "Identifier grammar"). */
const MAX_ID = 255;
const MAX_COUNT = 1_000_000_000;

class MatrixError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
  ) {
    super(message);
  }
}

const badJson = (message: string) => new MatrixError(400, 'M_BAD_JSON', message);
const missing = (name: string) => new MatrixError(400, 'M_MISSING_PARAM', `${name} is missing`);

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An optional field: absent and null are the same. */
function present(object: Json, key: string): unknown {
  const value = object[key];
  return value === null ? undefined : value;
}

function optionalString(object: Json, key: string, where: string, maxLength = Infinity): string | undefined {
  const value = present(object, key);
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw badJson(`${where}.${key} must be a string`);
  if (value.length > maxLength) throw badJson(`${where}.${key} is longer than ${maxLength} characters`);
  return value;
}

function optionalObject(object: Json, key: string, where: string): Json | undefined {
  const value = present(object, key);
  if (value === undefined) return undefined;
  if (!isObject(value)) throw badJson(`${where}.${key} must be an object`);
  return value;
}

function optionalCount(object: Json, key: string, where: string): number | undefined {
  const value = present(object, key);
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > MAX_COUNT) {
    throw badJson(`${where}.${key} must be a whole number from 0 to ${MAX_COUNT}`);
  }
  return value as number;
}

function requiredString(object: Json, key: string, where: string, maxLength: number): string {
  const value = present(object, key);
  if (value === undefined || value === '') throw missing(`${where}.${key}`);
  if (typeof value !== 'string') throw badJson(`${where}.${key} must be a string`);
  if (value.length > maxLength) throw badJson(`${where}.${key} is longer than ${maxLength} characters`);
  return value;
}

function parseDevice(value: unknown, index: number): MatrixDevice {
  const where = `notification.devices[${index}]`;
  if (!isObject(value)) throw badJson(`${where} must be an object`);
  const appId = requiredString(value, 'app_id', where, MAX_APP_ID);
  const pushkey = requiredString(value, 'pushkey', where, MAX_PUSHKEY);
  const pushkeyTs = present(value, 'pushkey_ts');
  if (pushkeyTs !== undefined && (!Number.isSafeInteger(pushkeyTs) || (pushkeyTs as number) < 0)) {
    throw badJson(`${where}.pushkey_ts must be a unix time in seconds`);
  }
  optionalObject(value, 'tweaks', where);
  const data = optionalObject(value, 'data', where) ?? {};
  const format = optionalString(data, 'format', `${where}.data`);
  return { appId, pushkey, pushkeyTs: pushkeyTs as number | undefined, data: { ...data, format } };
}

/** The notify body, checked before anything is written: a refused request changes nothing. */
export function parseNotify(body: unknown): MatrixNotification {
  if (!isObject(body)) throw badJson('the body must be a JSON object');
  const given = present(body, 'notification');
  if (given === undefined) throw missing('notification');
  if (!isObject(given)) throw badJson('notification must be an object');
  const where = 'notification';
  const devices = present(given, 'devices');
  if (devices === undefined) throw missing('notification.devices');
  if (!Array.isArray(devices)) throw badJson('notification.devices must be an array');
  if (devices.length === 0) throw badJson('notification.devices names no device');
  if (devices.length > MAX_DEVICES) throw badJson(`notification.devices names more than ${MAX_DEVICES} devices`);
  const prio = present(given, 'prio') ?? 'high';
  if (prio !== 'high' && prio !== 'low') throw badJson('notification.prio must be "high" or "low"');
  const userIsTarget = present(given, 'user_is_target');
  if (userIsTarget !== undefined && typeof userIsTarget !== 'boolean') throw badJson('notification.user_is_target must be true or false');
  // The event's content is checked for shape only: it is never pushed.
  optionalObject(given, 'content', where);
  const counts = optionalObject(given, 'counts', where) ?? {};
  const notification: MatrixNotification = {
    eventId: optionalString(given, 'event_id', where, MAX_ID),
    roomId: optionalString(given, 'room_id', where, MAX_ID),
    type: optionalString(given, 'type', where, MAX_ID),
    sender: optionalString(given, 'sender', where, MAX_ID),
    // Names are cut to fit a title, never refused for their length.
    senderDisplayName: optionalString(given, 'sender_display_name', where),
    roomName: optionalString(given, 'room_name', where),
    roomAlias: optionalString(given, 'room_alias', where, MAX_ID),
    userIsTarget: userIsTarget as boolean | undefined,
    prio,
    unread: optionalCount(counts, 'unread', 'notification.counts'),
    missedCalls: optionalCount(counts, 'missed_calls', 'notification.counts'),
    devices: devices.map(parseDevice),
  };
  if (notification.eventId !== undefined && notification.roomId === undefined) {
    throw missing('notification.room_id (required with event_id)');
  }
  return notification;
}

function sendMatrixError(reply: FastifyReply, error: unknown, log: Logger) {
  if (error instanceof MatrixError) return reply.status(error.status).send({ errcode: error.errcode, error: error.message });
  const status = errorStatus(error);
  // Herald's body parser refuses what is not JSON before the route runs.
  if (status === 400 && error instanceof HeraldError) return reply.status(400).send({ errcode: 'M_NOT_JSON', error: error.message });
  if (status === 413) return reply.status(413).send({ errcode: 'M_TOO_LARGE', error: 'the request body is too large' });
  if (status >= 500) log.error({ err: error }, 'Matrix notify failed');
  const message = status >= 500 ? serverErrorMessage(error, status) : (error as Error).message;
  return reply.status(status).send({ errcode: status === 404 ? 'M_UNRECOGNIZED' : 'M_UNKNOWN', error: message });
}

const NOT_CONFIGURED = new MatrixError(
  404,
  'M_UNRECOGNIZED',
  'this Herald is not configured as a Matrix push gateway (HERALD_MATRIX_APPS)',
);

/** The Matrix push gateway at /_matrix/push/v1. */
export function matrixApi(parts: MatrixParts): FastifyPluginAsync {
  return async (app) => {
    app.setErrorHandler((error, _request, reply) => sendMatrixError(reply, error, parts.log));
    // The spec: an unknown endpoint is 404 M_UNRECOGNIZED, a known one with another method 405.
    app.setNotFoundHandler((_request, reply) => reply.status(404).send({ errcode: 'M_UNRECOGNIZED', error: 'unrecognized request' }));
    app.route({
      method: ['GET', 'PUT', 'DELETE', 'PATCH'],
      url: '/notify',
      handler: (_request, reply) => reply.status(405).send({ errcode: 'M_UNRECOGNIZED', error: 'notify takes POST' }),
    });

    app.post('/notify', async (request) => {
      if (!parts.gateway.configured) throw NOT_CONFIGURED;
      const notification = parseNotify(request.body);
      return parts.gateway.notify(notification);
    });
  };
}
