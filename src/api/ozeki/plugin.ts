import { createHmac } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { StationUsers } from '../../chat/station-users.ts';
import type { Blocks, Changes, Conversations, Devices, Friends, Preferences, Users } from '../../chat/services.ts';
import type { User } from '../../chat/users.ts';
import { checkStation, describeDevice, isPlatform, PLATFORMS } from '../../chat/devices.ts';
import { MAX_PARTICIPANTS, type PropertyAction } from '../../chat/conversations.ts';
import { AVAILABILITY_STATES, isAvailability } from '../../chat/availability.ts';
import { MAX_DOWNLOAD, type IncomingMessage } from '../../chat/messages.ts';
import { HeraldError, badRequest, forbidden, notFound, unauthorized } from '../../errors.ts';
import { errorStatus, sameSecret, serverErrorMessage, type Endpoints } from '../http.ts';
import type { CallLimits } from '../../limits/limiter.ts';
import { Fields } from './fields.ts';
import { getPreferences, setPreferences } from './preferences.ts';

/** What the Ozeki API works with: built once per node in app.ts. */
export interface OzekiParts {
  users: Pick<Users, 'byApiKey'>;
  devices: Pick<Devices, 'bind' | 'register' | 'forgetBeyondLimit' | 'udpSecretOf'>;
  friends: Pick<Friends, 'list' | 'setAvailability'>;
  blocks: Blocks;
  changes: Changes;
  conversations: Conversations;
  /** Do-not-disturb, quiet hours, conversations muted until a time, the kinds a device alerts for. */
  preferences: Preferences;
  /** Station → user, remembered for the calls after login. */
  stationUsers: Pick<StationUsers, 'get'>;
  /** Where this node is reached: the login answer names its listeners. */
  endpoints: Endpoints;
  /** The browser's applicationServerKey for pushManager.subscribe(). */
  vapidPublicKey: string;
  bodyLimit: number;
  /** Logins per address; calls per station and per user once the station is known. */
  limits: CallLimits;
  log: Logger;
}

/** What a handler knows about the call. */
interface Call {
  parts: OzekiParts;
  request: FastifyRequest;
  fields: Fields;
  action: string;
  station: string;
  user: User;
}

type Handler = (call: Call) => Promise<Record<string, unknown>>;

const PROPERTY_ACTIONS: PropertyAction[] = [
  'clear',
  'favorite',
  'unfavorite',
  'mute',
  'unmute',
  'hide',
  'unhide',
  'setlistitembackgroundcolor',
];

function conversationId(fields: Fields): string {
  const id = fields.nonEmpty('conversationid', 64);
  if (!/^[0-9a-zA-Z_-]{1,64}$/.test(id)) throw badRequest('conversationid must be letters, digits, _ or -');
  return id.toLowerCase();
}

function parseMessage(fields: Fields): IncomingMessage {
  const raw = fields.body.message;
  if (raw === undefined || raw === null) throw badRequest('message is missing');
  const shape = 'message must be a JSON string of {ID, Type, Created, ValidUntil, Data}';
  // The wire carries the message as text (the README's "JSON string"), never as an object.
  if (typeof raw !== 'string') throw badRequest(shape);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw badRequest(shape);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw badRequest(shape);
  const m = Fields.of(value);
  const message = {
    ID: m.nonEmpty('ID', 200),
    Type: m.optionalString('Type', 64) ?? 'Message',
    Created: m.optionalTime('Created') ?? '',
    ValidUntil: m.optionalString('ValidUntil', 64) ?? '',
    Data: m.string('Data', 10 * 1024 * 1024),
  };
  return message;
}

const conversationActions: Record<string, Handler> = {
  async list({ parts, user }) {
    return { conversations: await parts.conversations.list(user.id) };
  },
  async create({ parts, user, fields }) {
    const participantIds = fields.stringArray('participantids', MAX_PARTICIPANTS, 64);
    const conversation = await parts.conversations.create(user.id, {
      participantIds,
      displayName: fields.optionalString('displayname', 200),
      instance: fields.optionalString('instance', 200),
      secret: fields.optionalString('secret', 200),
    });
    return { conversation };
  },
  async add({ parts, user, fields }) {
    const id = conversationId(fields);
    const message = parseMessage(fields);
    const result = await parts.conversations.addMessage({ id: user.id, name: user.name }, id, message);
    return { message: result.message };
  },
  async download({ parts, user, fields }) {
    return parts.conversations.download(user.id, conversationId(fields), {
      firstMessageId: fields.optionalString('firstmessageid', 200),
      firstMessageDate: fields.optionalTime('firstmessagedate'),
      firstReportId: fields.optionalString('firstreportid', 200),
      firstReportDate: fields.optionalTime('firstreportdate'),
    });
  },
  async downloadpartial({ parts, user, fields }) {
    return parts.conversations.download(user.id, conversationId(fields), {
      firstMessageId: fields.optionalString('firstmessageid', 200),
      firstMessageDate: fields.optionalTime('firstmessagedate'),
      firstReportId: fields.optionalString('firstreportid', 200),
      firstReportDate: fields.optionalTime('firstreportdate'),
      lastMessageId: fields.optionalString('lastmessageid', 200),
      lastMessageDate: fields.optionalTime('lastmessagedate'),
      lastReportId: fields.optionalString('lastreportid', 200),
      lastReportDate: fields.optionalTime('lastreportdate'),
      limit: fields.optionalInteger('limit', 1, MAX_DOWNLOAD) ?? 50,
    });
  },
};
for (const action of PROPERTY_ACTIONS) {
  conversationActions[action] = async ({ parts, user, fields }) => {
    const id = conversationId(fields);
    const value =
      action === 'hide'
        ? fields.optionalString('hideid', 200)
        : action === 'setlistitembackgroundcolor'
          ? fields.string('color', 32)
          : undefined;
    return { conversation: await parts.conversations.setProperty(user.id, id, action, value) };
  };
}

async function report({ parts, user, fields, action }: Call) {
  const id = conversationId(fields);
  const messageIds = fields.stringArray('messageids', 10_000);
  const stored = await parts.conversations.addReport(user.id, id, {
    type: action as 'viewed' | 'delivered',
    id: fields.optionalString('reportid', 200),
    created: fields.optionalTime('lastmessagedate') ?? new Date().toISOString().slice(0, 19).replace('T', ' '),
    fields: {
      Instance: fields.optionalString('instance', 200) ?? '',
      FirstMessageDate: fields.optionalTime('firstmessagedate') ?? '',
      LastMessageDate: fields.optionalTime('lastmessagedate') ?? '',
      MessageIDs: messageIds,
    },
  });
  return { reportid: stored.id };
}

function blockTarget(fields: Fields) {
  const userId = fields.optionalString('userid', 64)?.toLowerCase();
  const conversation = fields.optionalString('conversationid', 64)?.toLowerCase();
  if (!userId && !conversation) throw badRequest('name the userid or the conversationid to block');
  return { userId, conversationId: userId ? undefined : conversation };
}

/** api name → action → handler. */
const apis: Record<string, Record<string, Handler>> = {
  chatavailability: {},
  chatfriends: {
    async list({ parts, user }) {
      const friends = await parts.friends.list(user.id);
      return {
        friends: Object.fromEntries(friends.map((f) => [f.id, f.name])),
        availabilities: friends.map((f) => ({
          friendid: f.id,
          friendname: f.name,
          publickey: '',
          availability: f.availability,
        })),
      };
    },
  },
  chatnotification: {
    async download({ parts, user, fields }) {
      return parts.changes.since(user.id, fields.time('timestamp'));
    },
  },
  chatreports: { viewed: report, delivered: report },
  chatconversation: conversationActions,
  chatblocklist: {
    async blocklist({ parts, user }) {
      return parts.blocks.list(user.id);
    },
    async block({ parts, user, fields }) {
      await parts.blocks.block(user.id, blockTarget(fields));
      return parts.blocks.list(user.id);
    },
    async unblock({ parts, user, fields }) {
      await parts.blocks.unblock(user.id, blockTarget(fields));
      return parts.blocks.list(user.id);
    },
  },
  chatpreferences: {
    get: ({ parts, user, station }) => getPreferences(parts.preferences, user.id, station),
    set: ({ parts, user, station, fields }) => setPreferences(parts.preferences, user.id, station, fields.body),
  },
  chatdevice: {
    async register({ parts, user, station, fields }) {
      const platform = fields.nonEmpty('platform', 16);
      if (!isPlatform(platform)) throw badRequest(`platform must be one of ${PLATFORMS.join(', ')}`);
      const pushToken =
        fields.body.pushtoken === undefined ? undefined : fields.body.pushtoken === null ? null : fields.string('pushtoken', 4096);
      const device = await parts.devices.register(station, user.id, {
        platform,
        pushToken,
        pushSubscription: pushSubscriptionField(fields.body.pushsubscription),
      });
      return { device: describeDevice(device), udpsecret: parts.devices.udpSecretOf(device) };
    },
  },
};

/** True for the api names this surface serves; anything else is a 404 (and one metrics label). */
export function isOzekiApi(name: unknown): name is string {
  return typeof name === 'string' && (name === 'chatlogin' || Object.hasOwn(apis, name));
}

/** A browser's PushSubscription.toJSON(), sent as an object or as its JSON text. */
function pushSubscriptionField(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (value.length > 4096) throw badRequest('pushsubscription is longer than 4096 characters');
  try {
    return JSON.parse(value);
  } catch {
    throw badRequest('pushsubscription must be the JSON of PushSubscription.toJSON(): {endpoint, keys: {p256dh, auth}}');
  }
}

/** Availability actions are "user" + the state: useravailable, useraway, userbusy… */
const AVAILABILITY_ACTIONS = AVAILABILITY_STATES.map((state) => `user${state}`);

function loginResponse(parts: OzekiParts, user: User, udpSecret: string | null) {
  const base = `${parts.endpoints.https}/?srv=chatserver&api=`;
  return {
    server: 'Herald',
    registration: 'true',
    userid: user.id,
    fullname: user.name,
    nick: user.nick,
    listeners: { udp: parts.endpoints.udp, ws: parts.endpoints.ws, wss: parts.endpoints.wss },
    urls: {
      login: `${base}chatlogin`,
      availability: `${base}chatavailability`,
      conversation: `${base}chatconversation`,
      conversationgroup: `${base}chatconversation`,
      blocklist: `${base}chatblocklist`,
      fileserver: '',
      friends: `${base}chatfriends`,
      notification: `${base}chatnotification`,
      reports: `${base}chatreports`,
      device: `${base}chatdevice`,
      preferences: `${base}chatpreferences`,
    },
    udpsecret: udpSecret,
    // The browser's applicationServerKey for pushManager.subscribe().
    vapidpublickey: parts.vapidPublicKey,
  };
}

/** Ozeki-Signature, when present, is hex(HMAC-SHA256(apikey, raw body)). */
function checkSignature(request: FastifyRequest, apikey: string, limits: CallLimits) {
  const signature = request.headers['ozeki-signature'];
  if (signature === undefined || signature === '') return;
  const expected = createHmac('sha256', apikey)
    .update(request.rawBody ?? '')
    .digest('hex');
  if (typeof signature !== 'string' || !sameSecret(signature.toLowerCase(), expected)) {
    limits.credentialRefused(request.ip);
    throw unauthorized('Ozeki-Signature does not match the request body');
  }
}

async function handle(parts: OzekiParts, request: FastifyRequest): Promise<Record<string, unknown>> {
  const query = request.query as Record<string, unknown>;
  if (query.srv === undefined || query.srv === '') throw badRequest('the query must name the srv (?srv=chatserver&api=…)');
  if (query.srv !== 'chatserver') throw notFound(`unknown srv "${String(query.srv)}"`);
  const api = query.api;
  if (typeof api !== 'string' || api === '') throw badRequest('the query must name the api (?srv=chatserver&api=…)');
  if (!isOzekiApi(api)) throw notFound(`unknown api "${api}"`);
  const fields = Fields.of(request.body);
  const action = fields.nonEmpty('action', 64);
  fields.time('timestamp');
  const stationHeader = request.headers['ozeki-station'];
  if (stationHeader === undefined) throw unauthorized('the Ozeki-Station header is missing');
  const station = checkStation(stationHeader);

  if (api === 'chatlogin') {
    if (action !== 'login') throw badRequest(`unknown action "${action}" for chatlogin`);
    const apikey = fields.nonEmpty('apikey', 200);
    parts.limits.enforce('login', request.ip);
    const user = await parts.users.byApiKey(apikey);
    if (!user) {
      parts.limits.credentialRefused(request.ip);
      throw unauthorized('the apikey is not valid');
    }
    checkSignature(request, apikey, parts.limits);
    const platformField = fields.optionalString('platform', 16);
    if (platformField !== undefined && !isPlatform(platformField)) {
      throw badRequest(`platform must be one of ${PLATFORMS.join(', ')}`);
    }
    const { udpSecret } = await parts.devices.bind(station, user.id, platformField);
    await parts.devices.forgetBeyondLimit(user.id, station);
    return loginResponse(parts, user, udpSecret);
  }

  const user = await parts.stationUsers.get(station);
  if (!user) throw unauthorized('unknown station: log in with chatlogin first');
  const claimedUser = request.headers['ozeki-user'];
  if (typeof claimedUser === 'string' && claimedUser !== '' && claimedUser.toLowerCase() !== user.id) {
    throw forbidden('Ozeki-User does not match the user of this station');
  }
  parts.limits.enforce('user', user.id);
  checkSignature(request, user.apikey, parts.limits);

  const call: Call = { parts, request, fields, action, station, user };
  if (api === 'chatavailability') {
    const state = action.startsWith('user') ? action.slice(4) : '';
    if (!isAvailability(state)) throw badRequest(`unknown action "${action}" for chatavailability (${AVAILABILITY_ACTIONS.join(', ')})`);
    await parts.friends.setAvailability(user.id, state);
    return {};
  }
  // Own keys only: an inherited member (constructor, toString…) is not an action.
  const handler = Object.hasOwn(apis[api], action) ? apis[api][action] : undefined;
  if (!handler) throw badRequest(`unknown action "${action}" for ${api}`);
  return handler(call);
}

/** The Ozeki Chat API at /, /index.php and /ozeki/index.php (`?srv=chatserver&api=…`). */
/** What checkStation accepts, tested before the body is read. */
const STATION = /^[0-9a-fA-F]{32}$/;

export function ozekiApi(parts: OzekiParts): FastifyPluginAsync {
  return async (app) => {
    app.setErrorHandler((error, _request, reply) => {
      const status = errorStatus(error);
      if (status >= 500) parts.log.error({ err: error }, 'Ozeki API call failed');
      const message =
        status >= 500
          ? serverErrorMessage(error, status)
          : error instanceof HeraldError
            ? error.message
            : status === 413
              ? `the request body is larger than ${parts.bodyLimit} bytes`
              : (error as Error).message;
      return reply.status(status).send({ status: 'ERROR', errormessage: message });
    });
    // A station's calls pay its bucket before their bodies are read: a flooding station is
    // turned away for the cost of a map lookup, and the other stations keep the node's time.
    // (Logins are limited per address instead: a station is not anyone's yet.)
    app.addHook('onRequest', async (request) => {
      const station = request.headers['ozeki-station'];
      if (typeof station !== 'string' || !STATION.test(station)) return;
      if ((request.query as { api?: unknown }).api === 'chatlogin') return;
      parts.limits.enforce('station', station.toLowerCase());
    });
    for (const path of ['/', '/index.php', '/ozeki/index.php']) {
      app.post(path, async (request) => ({ status: 'OK', errormessage: '', ...(await handle(parts, request)) }));
    }
  };
}
