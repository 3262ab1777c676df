import type { FastifyPluginAsync, FastifySchemaValidationError } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { badRequest } from '../../errors.ts';
import { MAX_EXPIRES_IN_SECONDS, MAX_TOKEN_NAME_LENGTH } from '../../chat/api-tokens.ts';
import type { ApiTokens } from '../../chat/services.ts';
import { requireAdmin, SCOPES, type AuthParts } from './auth.ts';

/** What the token routes work with. */
export interface TokenRouteParts extends AuthParts {
  apiTokens: Pick<ApiTokens, 'create' | 'list' | 'revoke' | 'authenticate'>;
}

const ScopeName = Type.Enum([...SCOPES], { description: 'what the token may do' });
const Time = Type.Integer({ description: 'unix milliseconds' });
const TimeOrNull = Type.Union([Time, Type.Null()]);
const ErrorBody = Type.Object({ error: Type.String() });

const NewToken = Type.Object({
  name: Type.String({ minLength: 1, maxLength: MAX_TOKEN_NAME_LENGTH, description: 'who holds the token, e.g. billing-backend' }),
  scopes: Type.Array(ScopeName, { minItems: 1 }),
  expiresin: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: MAX_EXPIRES_IN_SECONDS,
      description: 'seconds from now until the token stops working; leave it out for a token that does not expire',
    }),
  ),
});

const CreatedToken = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scopes: Type.Array(ScopeName),
  token: Type.String({ description: 'the bearer token (hrld_…): shown in this answer only, stored as its SHA-256' }),
  created: Time,
  expires: TimeOrNull,
});

const TokenInfo = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scopes: Type.Array(ScopeName),
  created: Time,
  expires: TimeOrNull,
  lastused: Type.Union([Time, Type.Null()], { description: 'recorded at most once a minute' }),
  revoked: Type.Optional(Time),
});

const refusals = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody };

/** Names the allowed values where a value is not among them (an unknown scope, say). */
function validationError(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const text = errors.map((e) => {
    const allowed = (e.params as { allowedValues?: unknown[] }).allowedValues;
    return `${dataVar}${e.instancePath} ${allowed ? `must be one of ${allowed.join(', ')}` : e.message}`;
  });
  return badRequest(text.join(', '));
}

/**
 * /v1/tokens: scoped tokens for other backends, managed with the admin token only (a token
 * can never make, see or revoke tokens). The admin check runs when the request arrives, so a
 * caller without the admin token learns nothing from how its body would have been judged.
 */
export function tokenRoutes(parts: TokenRouteParts): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const { apiTokens } = parts;
    const adminOnly = async (request: Parameters<typeof requireAdmin>[1]) => void (await requireAdmin(parts, request));

    app.post(
      '/tokens',
      {
        onRequest: adminOnly,
        schemaErrorFormatter: validationError,
        schema: {
          summary: 'Make a scoped API token (the token is in this answer only)',
          tags: ['tokens'],
          body: NewToken,
          response: { 201: CreatedToken, ...refusals },
        },
      },
      async (request, reply) => {
        const { name, scopes, expiresin } = request.body;
        return reply.status(201).send(await apiTokens.create({ name, scopes, expiresIn: expiresin }));
      },
    );

    app.get(
      '/tokens',
      {
        onRequest: adminOnly,
        schema: {
          summary: 'List the API tokens, revoked ones too (never the tokens themselves)',
          tags: ['tokens'],
          response: { 200: Type.Object({ tokens: Type.Array(TokenInfo) }), 401: ErrorBody, 403: ErrorBody },
        },
      },
      async () => ({ tokens: await apiTokens.list() }),
    );

    app.delete(
      '/tokens/:id',
      {
        onRequest: adminOnly,
        schema: {
          summary: 'Revoke an API token: every node refuses it from now on',
          tags: ['tokens'],
          params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
          response: { 204: Type.Null(), 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
        },
      },
      async (request, reply) => {
        await apiTokens.revoke(request.params.id);
        return reply.status(204).send(null);
      },
    );
  };
}
