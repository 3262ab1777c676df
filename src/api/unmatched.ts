import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { type Cors, isOzekiPath, pathOf } from './cors.ts';

/*
 * What a request no route takes gets: 404 for a path no route has, 405 with Allow for a path
 * that exists under other methods, 204 with Allow (and a CORS preflight's headers) for OPTIONS
 * on an existing path. Each answer is in the error shape of the API the path belongs to.
 * Fastify itself answers 404 for a wrong method and knows no OPTIONS, hence this table.
 */

/** The routes of one server by path pattern, filled from Fastify's onRoute hook. */
export class RouteTable {
  private readonly routes = new Map<string, { pattern: RegExp; methods: Set<string> }>();

  /** An onRoute hook: records the route's path and methods. */
  readonly onRoute = (route: RouteOptions): void => {
    let entry = this.routes.get(route.url);
    if (!entry) {
      entry = { pattern: pathPattern(route.url), methods: new Set() };
      this.routes.set(route.url, entry);
    }
    for (const method of [route.method].flat()) entry.methods.add(method);
  };

  /** The methods some route takes at this concrete path, sorted; empty for an unknown path. */
  methodsAt(path: string): string[] {
    const methods = new Set<string>();
    for (const { pattern, methods: own } of this.routes.values()) {
      if (pattern.test(path)) for (const method of own) methods.add(method);
    }
    return [...methods].sort();
  }
}

/** `/v1/users/:id` as a regular expression over concrete paths (`*` matches the rest). */
function pathPattern(url: string): RegExp {
  const source = url
    .split(/(:[A-Za-z0-9_]+(?:\([^)]*\))?|\*)/)
    .map((piece) => (piece === '*' ? '.*' : piece.startsWith(':') ? '[^/]+' : piece.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}

export interface ApiErrors {
  name: string;
  body(status: number, message: string): unknown;
}

/** Each API's own error shape (see each plugin's error handler), keyed on its paths. */
export function apiOf(path: string): ApiErrors {
  if (isOzekiPath(path)) return { name: 'Ozeki Chat API', body: (_status, message) => ({ status: 'ERROR', errormessage: message }) };
  if (path === '/api' || path.startsWith('/api/')) return { name: 'Web3MQ', body: (status, message) => ({ code: status, msg: message }) };
  // Matrix push gateway: an unknown endpoint and an unsupported method are both M_UNRECOGNIZED.
  if (path.startsWith('/_matrix/')) {
    return { name: 'Matrix', body: (_status, message) => ({ errcode: 'M_UNRECOGNIZED', error: message }) };
  }
  if (path === '/v1' || path.startsWith('/v1/')) return { name: 'native API', body: (_status, message) => ({ error: message }) };
  return { name: 'Herald', body: (_status, message) => ({ error: message }) };
}

/** A caller-chosen path is echoed back at most this long. */
const ECHOED_PATH_LENGTH = 200;

/** Fastify's not-found handler for the whole server. */
export function unmatchedRequestHandler(routes: RouteTable, cors: Cors) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const path = pathOf(request);
    const shown = path.length > ECHOED_PATH_LENGTH ? `${path.slice(0, ECHOED_PATH_LENGTH)}…` : path;
    const api = apiOf(path);
    const methods = routes.methodsAt(path);
    if (methods.length === 0) {
      return reply.status(404).send(api.body(404, `no ${api.name} endpoint ${request.method} ${shown}`));
    }
    const allow = [...new Set([...methods, 'OPTIONS'])].sort().join(', ');
    reply.header('allow', allow);
    if (request.method === 'OPTIONS') {
      cors.preflight(request, reply, methods);
      return reply.status(204).send();
    }
    return reply.status(405).send(api.body(405, `${shown} takes ${allow}, not ${request.method}`));
  };
}
