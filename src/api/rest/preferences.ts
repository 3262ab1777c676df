import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Preferences, Users } from '../../chat/services.ts';
import {
  checkAlertKinds,
  checkConversationId,
  checkQuietHours,
  checkUntil,
  MAX_ALERT_KINDS,
  MAX_CONVERSATION_MUTES,
  type PreferencesChange,
  type PreferencesState,
} from '../../chat/preferences.ts';
import { STATION } from '../../chat/ids.ts';
import { badRequest } from '../../errors.ts';
import { SECURITY } from './schemas.ts';

/*
 * /v1/users/:id/preferences: a user's do-not-disturb, quiet hours, conversations muted until
 * a time and the kinds each device alerts for. The schema describes the shapes; the values
 * are checked by chat/preferences.ts, in the same words as the Ozeki API's.
 */

export interface PreferenceRouteParts {
  preferences: Preferences;
  users: Pick<Users, 'resolve'>;
  /** Refuses a caller who may not see (`read`, users:read) or change (`write`, users:write) this user's preferences. */
  authorize(access: 'read' | 'write'): (request: FastifyRequest) => Promise<void>;
}

const Time = (description: string) => Type.Integer({ description: `unix milliseconds: ${description}` });
const Days = Type.Array(Type.String({ description: 'mon, tue, wed, thu, fri, sat or sun' }), {
  description: 'the days a quiet period starts on (default: every day)',
});
const QuietHoursIn = Type.Object(
  {
    start: Type.String({ description: 'HH:MM, 00:00 to 23:59, in the zone' }),
    end: Type.String({ description: 'HH:MM; earlier than start: the period ends the next day' }),
    timezone: Type.String({ description: 'an IANA time zone, such as Europe/Budapest' }),
    days: Type.Optional(Days),
  },
  { additionalProperties: false },
);
const QuietHoursOut = Type.Object({ start: Type.String(), end: Type.String(), timezone: Type.String(), days: Days });
const Kinds = Type.Array(Type.String(), {
  description: `at most ${MAX_ALERT_KINDS} kinds: message, system.friend_request, system.agree_friend_request, system.group_invitation, subscription or a namespaced kind such as app.invoice`,
});

const PreferencesBody = Type.Object(
  {
    dnduntil: Type.Optional(Type.Union([Time('do-not-disturb until then, at most 366 days ahead'), Type.Null()])),
    quiethours: Type.Optional(Type.Union([QuietHoursIn, Type.Null()])),
    conversationmutes: Type.Optional(
      Type.Record(Type.String(), Type.Union([Time('muted until then'), Type.Null()]), {
        description: `conversation id → muted until (null ends the mute); at most ${MAX_CONVERSATION_MUTES} at once, others stay`,
      }),
    ),
    devicealertkinds: Type.Optional(
      Type.Record(Type.String(), Type.Union([Kinds, Type.Null()]), {
        description: "station → the kinds that alert on that device of the user's, or null for every kind; others stay",
      }),
    ),
  },
  { additionalProperties: false },
);

const PreferencesAnswer = Type.Object({
  dnduntil: Type.Union([Time('do-not-disturb ends'), Type.Null()], { description: 'null when do-not-disturb is not in force' }),
  quiethours: Type.Union([QuietHoursOut, Type.Null()]),
  conversationmutes: Type.Record(Type.String(), Time('muted until')),
  devicealertkinds: Type.Record(Type.String(), Type.Union([Kinds, Type.Null()]), {
    description: 'every device of the user; null: every kind alerts',
  }),
  silentnow: Type.Boolean({ description: "true while the user's new notifications are silent (do-not-disturb or quiet hours)" }),
});

function describe(state: PreferencesState) {
  return {
    dnduntil: state.dndUntil,
    quiethours: state.quietHours && {
      start: state.quietHours.start,
      end: state.quietHours.end,
      timezone: state.quietHours.timeZone,
      days: state.quietHours.days,
    },
    conversationmutes: state.conversationMutes,
    devicealertkinds: state.alertKinds,
    silentnow: state.silentNow,
  };
}

type Body = {
  dnduntil?: number | null;
  quiethours?: { start: string; end: string; timezone: string; days?: string[] } | null;
  conversationmutes?: Record<string, number | null>;
  devicealertkinds?: Record<string, string[] | null>;
};

function preferencesChange(body: Body, now = Date.now()): PreferencesChange {
  const change: PreferencesChange = {};
  if (body.dnduntil !== undefined) change.dndUntil = body.dnduntil === null ? null : checkUntil(body.dnduntil, 'dnduntil', now);
  if (body.quiethours !== undefined) change.quietHours = body.quiethours === null ? null : checkQuietHours(body.quiethours);
  if (body.conversationmutes !== undefined) {
    change.conversationMutes = {};
    for (const [id, until] of Object.entries(body.conversationmutes)) {
      checkConversationId(id, 'conversationmutes');
      change.conversationMutes[id] = until === null ? null : checkUntil(until, `conversationmutes.${id}`, now);
    }
  }
  if (body.devicealertkinds !== undefined) {
    change.alertKinds = {};
    for (const [station, kinds] of Object.entries(body.devicealertkinds)) {
      if (!STATION.test(station)) throw badRequest(`devicealertkinds: "${station}" is not a station (32 hexadecimal characters)`);
      change.alertKinds[station.toLowerCase()] = checkAlertKinds(kinds, `devicealertkinds.${station}`);
    }
  }
  return change;
}

export function preferenceRoutes(app: FastifyInstance, parts: PreferenceRouteParts): void {
  const UserParams = Type.Object({ id: Type.String({ minLength: 1, description: 'an e-mail address or a user id' }) });

  app.get(
    '/users/:id/preferences',
    {
      preValidation: parts.authorize('read'),
      schema: {
        summary: "A user's alert preferences: do-not-disturb, quiet hours, muted conversations, each device's alerting kinds",
        tags: ['preferences'],
        security: SECURITY.selfOrAdmin,
        params: UserParams,
        response: { 200: PreferencesAnswer },
      },
    },
    async (request) => {
      const user = await parts.users.resolve((request.params as { id: string }).id);
      return describe(await parts.preferences.get(user.id));
    },
  );

  app.put(
    '/users/:id/preferences',
    {
      preValidation: parts.authorize('write'),
      schema: {
        summary: "Change a user's alert preferences: each field given is replaced, null clears it, a field left out stays",
        tags: ['preferences'],
        security: SECURITY.selfOrAdmin,
        params: UserParams,
        body: PreferencesBody,
        response: { 200: PreferencesAnswer },
      },
    },
    async (request) => {
      const user = await parts.users.resolve((request.params as { id: string }).id);
      const change = preferencesChange(request.body as Body);
      return describe(await parts.preferences.change(user.id, change));
    },
  );
}
