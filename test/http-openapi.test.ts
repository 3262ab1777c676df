import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Type } from 'typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SQLITE } from './helpers/stores.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { restApi, sendError, type RestParts } from '../src/api/rest/plugin.ts';
import { openApiPath } from '../src/api/rest/openapi.ts';
import { validatorCompiler } from '../src/api/rest/schemas.ts';

type Operation = {
  summary?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: Array<{ name: string; in: string }>;
  requestBody?: unknown;
  responses: Record<string, unknown>;
};
type Document = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, unknown> };
};

describe('GET /v1/openapi.json describes the native API', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(SQLITE);
  });
  afterAll(async () => server?.stop());

  it('anyone reads a valid OpenAPI 3.1 document, with the bearer token and the Ozeki-Station header as credentials', async () => {
    const response = await fetch(`${server.http}/v1/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const doc = (await response.json()) as Document;
    const validator = new Validator();
    const result = await validator.validate(doc as never);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    expect(doc.openapi).toBe('3.1.0');

    expect(doc.components.securitySchemes).toEqual({
      bearer: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
      ozekiStation: expect.objectContaining({ type: 'apiKey', in: 'header', name: 'Ozeki-Station' }),
    });
    const put = doc.paths['/v1/users/{id}/devices/{station}'].put;
    expect(put.parameters?.map((p) => `${p.in}:${p.name}`)).toEqual(['path:id', 'path:station']);
    expect(put.requestBody).toEqual({
      required: true,
      content: { 'application/json': { schema: expect.objectContaining({ type: 'object' }) } },
    });
    expect(put.security).toEqual([{ bearer: [] }, { ozekiStation: [] }]);
    expect(doc.paths['/v1/users'].post.security).toEqual([{ bearer: [] }]);
    expect(doc.paths['/v1/users'].post.responses['201']).toBeDefined();
    expect(doc.paths['/v1/webpush/vapid-public-key'].get.security).toEqual([]);
    expect(doc.paths['/v1/users/{id}/devices/{station}'].delete.responses['204']).toEqual({ description: expect.any(String) });
  });
});

describe('the document cannot drift from the routes', () => {
  it('every route registered under /v1 is in the document, with a summary, tags and its answer', async () => {
    // A server of its own, to list the routes Fastify really has (the handlers never run).
    const app: FastifyInstance = Fastify();
    const registered: Array<{ method: string; url: string }> = [];
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) registered.push({ method, url: route.url });
    });
    await app.register(restApi({ log: pino({ level: 'silent' }) } as unknown as RestParts), { prefix: '/v1' });
    await app.ready();
    try {
      const doc = (await app.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as Document;
      const calls = registered.filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS');
      expect(calls.length).toBeGreaterThanOrEqual(9);
      for (const { method, url } of calls) {
        const operation = doc.paths[openApiPath(url)]?.[method.toLowerCase()];
        expect(operation, `${method} ${url} declares no schema`).toBeDefined();
        expect(operation.summary, `${method} ${url} has no summary`).toEqual(expect.any(String));
        expect(operation.tags?.length, `${method} ${url} has no tags`).toBeGreaterThan(0);
        expect(
          Object.keys(operation.responses).some((status) => /^2/.test(status)),
          `${method} ${url} declares no answer`,
        ).toBe(true);
      }
      const documented = Object.values(doc.paths).reduce((n, methods) => n + Object.keys(methods).length, 0);
      expect(documented).toBe(calls.length);
    } finally {
      await app.close();
    }
  });
});

describe('what a new /v1 route gets from the shared pieces', () => {
  const app: FastifyInstance = Fastify();

  beforeAll(async () => {
    app.setValidatorCompiler(validatorCompiler);
    app.setErrorHandler((error, _request, reply) => sendError(reply, error, pino({ level: 'silent' })));
    app.get(
      '/feed',
      {
        schema: {
          querystring: Type.Object({
            limit: Type.Integer({ minimum: 1, maximum: 1000 }),
            since: Type.Optional(Type.Integer()),
            order: Type.Optional(Type.Enum(['oldest', 'newest'], { default: 'oldest' })),
          }),
        },
      },
      async (request) => ({ query: request.query }),
    );
    app.post(
      '/send',
      {
        schema: {
          body: Type.Object({ badge: Type.Integer(), to: Type.Optional(Type.Array(Type.Object({ user: Type.String({ minLength: 1 }) }))) }),
        },
      },
      async (request) => ({ body: request.body }),
    );
    await app.ready();
  });
  afterAll(async () => app.close());

  it('a querystring is converted from text and takes its defaults; a body is taken as sent', async () => {
    const read = await app.inject({ method: 'GET', url: '/feed?limit=20&since=7' });
    expect(read.json()).toEqual({ query: { limit: 20, since: 7, order: 'oldest' } });
    expect((await app.inject({ method: 'GET', url: '/feed?limit=1&order=newest' })).json()).toEqual({
      query: { limit: 1, order: 'newest' },
    });
    const outOfRange = await app.inject({ method: 'GET', url: '/feed?limit=0' });
    expect(outOfRange.statusCode).toBe(400);
    expect(outOfRange.json()).toEqual({ error: 'query parameter limit must be a whole number from 1 to 1000' });
    const missing = await app.inject({ method: 'GET', url: '/feed' });
    expect(missing.json()).toEqual({ error: 'query parameter limit must be a whole number from 1 to 1000' });

    const sent = await app.inject({ method: 'POST', url: '/send', payload: { badge: 3 } });
    expect(sent.json()).toEqual({ body: { badge: 3 } });
    const asText = await app.inject({ method: 'POST', url: '/send', payload: { badge: '3' } });
    expect(asText.statusCode).toBe(400);
    expect(asText.json()).toEqual({ error: 'badge must be a whole number' });
    const nested = await app.inject({ method: 'POST', url: '/send', payload: { badge: 1, to: [{ user: 'ann' }, {}] } });
    expect(nested.json()).toEqual({ error: 'to[1].user must be a non-empty string' });
  });
});
