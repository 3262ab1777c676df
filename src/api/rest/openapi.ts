import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import { ErrorShape } from './schemas.ts';

/*
 * The OpenAPI 3.1 document of /v1, made from the schemas the routes declare: whatever route is
 * registered under the plugin with a `schema` is in it, so the document cannot drift from
 * what the server validates. OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what
 * TypeBox writes, so route schemas go in unchanged.
 */

export interface DocumentedRoute {
  method: string;
  url: string;
  schema: FastifySchema;
}

type Json = Record<string, unknown>;

/** Records every route registered from here on in this plugin and its children. */
export function collectRoutes(app: FastifyInstance): DocumentedRoute[] {
  const routes: DocumentedRoute[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    if (!route.schema || route.schema.hide) return;
    for (const method of [route.method].flat()) {
      // Fastify adds HEAD beside every GET by itself; OPTIONS is answered for every path.
      if (method === 'HEAD' || method === 'OPTIONS') continue;
      routes.push({ method, url: route.url, schema: route.schema });
    }
  });
  return routes;
}

/** Fastify's `/users/:id` is OpenAPI's `/users/{id}`. */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)(\([^)]*\))?/g, '{$1}');
}

const SECURITY_SCHEMES = {
  bearer: {
    type: 'http',
    scheme: 'bearer',
    description: 'The admin token (HERALD_ADMIN_TOKEN), or a scoped API token where the call accepts one.',
  },
  ozekiStation: {
    type: 'apiKey',
    in: 'header',
    name: 'Ozeki-Station',
    description:
      "A logged-in device's station (32 hexadecimal characters): calls about the user's own devices accept it instead of a token.",
  },
};

const STATUS_WORDS: Record<string, string> = {
  '200': 'done',
  '201': 'created',
  '204': 'done; no content',
  '400': 'a field is missing or not what it must be',
  '401': 'no credentials, or unknown ones',
  '403': 'these credentials may not make this call',
  '404': 'no such thing',
  '409': 'conflicts with what exists',
  default: 'refused or failed',
};

const jsonContent = (schema: unknown) => ({ 'application/json': { schema } });

function parameters(route: DocumentedRoute): Json[] {
  const list: Json[] = [];
  const pathSchema = route.schema.params as Json | undefined;
  const pathProperties = (pathSchema?.properties ?? {}) as Record<string, Json>;
  // Every placeholder of the path is a parameter, declared in the schema or not.
  for (const [, name] of route.url.matchAll(/:([A-Za-z0-9_]+)/g)) {
    const schema = pathProperties[name] ?? { type: 'string' };
    list.push({ name, in: 'path', required: true, ...described(schema), schema });
  }
  for (const [part, where] of [
    ['querystring', 'query'],
    ['headers', 'header'],
  ] as const) {
    const object = route.schema[part] as Json | undefined;
    const required = new Set((object?.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries((object?.properties ?? {}) as Record<string, Json>)) {
      list.push({ name, in: where, required: required.has(name), ...described(schema), schema });
    }
  }
  return list;
}

function described(schema: Json): Json {
  return typeof schema.description === 'string' ? { description: schema.description } : {};
}

function responses(schema: FastifySchema): Json {
  const declared = (schema.response ?? {}) as Record<string, Json>;
  const answers: Json = {};
  for (const [status, body] of Object.entries(declared)) {
    const key = status.toUpperCase();
    const description = typeof body.description === 'string' ? body.description : (STATUS_WORDS[status] ?? `HTTP ${status}`);
    answers[key] = body.type === 'null' ? { description } : { description, content: jsonContent(body) };
  }
  // Any call may be refused; the shape of a refusal is the same everywhere under /v1.
  if (!('DEFAULT' in answers)) answers.default = { description: STATUS_WORDS.default, content: jsonContent(ErrorShape) };
  return answers;
}

function operationId(route: DocumentedRoute): string {
  const words = route.url
    .replace(/^\/v1\//, '')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
  return [route.method.toLowerCase(), ...words].map((w, i) => (i === 0 ? w : w[0].toUpperCase() + w.slice(1))).join('');
}

/** The whole document for the routes collected so far. */
export function openApiDocument(routes: readonly DocumentedRoute[], info: { title: string; version: string }): Json {
  const paths: Record<string, Json> = {};
  const tags = new Set<string>();
  for (const route of routes) {
    const { schema } = route;
    for (const tag of schema.tags ?? []) tags.add(tag);
    const operation: Json = {
      operationId: schema.operationId ?? operationId(route),
      ...(schema.summary ? { summary: schema.summary } : {}),
      ...(schema.description ? { description: schema.description } : {}),
      ...(schema.tags ? { tags: [...schema.tags] } : {}),
      ...(schema.deprecated ? { deprecated: true } : {}),
      ...(schema.security ? { security: schema.security } : {}),
    };
    const params = parameters(route);
    if (params.length > 0) operation.parameters = params;
    if (schema.body) operation.requestBody = { required: true, content: jsonContent(schema.body) };
    operation.responses = responses(schema);
    const path = openApiPath(route.url);
    paths[path] = { ...paths[path], [route.method.toLowerCase()]: operation };
  }
  return {
    openapi: '3.1.0',
    info,
    // Calls need the bearer token unless their route says otherwise.
    security: [{ bearer: [] }],
    tags: [...tags].sort().map((name) => ({ name })),
    paths,
    components: { securitySchemes: SECURITY_SCHEMES },
  };
}
