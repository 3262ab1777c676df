import type { FastifyReply, FastifyRequest } from 'fastify';

/*
 * Cross-origin calls from web pages (HERALD_CORS_ORIGINS), for the APIs a browser client
 * uses: Ozeki, Web3MQ and /v1. /healthz and /metrics are for operators and get no CORS
 * headers. No cookies are involved (every API authenticates by header), so credentials are
 * never allowed.
 */

/** The request headers the browser APIs read: Ozeki, /v1 and Web3MQ's signed calls. */
const ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'Ozeki-Station',
  'Ozeki-User',
  'Ozeki-Signature',
  'Idempotency-Key',
  'web3mq-request-pubkey',
  'didkey',
].join(', ');

/** Chromium caps a cached preflight at two hours; Firefox at a day. */
const PREFLIGHT_MAX_AGE_S = 7200;

/** The Ozeki Chat API's paths: `/`, `/index.php`, `/ozeki/…`. */
export function isOzekiPath(path: string): boolean {
  return path === '/' || path === '/index.php' || path === '/ozeki' || path.startsWith('/ozeki/');
}

function isBrowserApiPath(path: string): boolean {
  return isOzekiPath(path) || path === '/api' || path.startsWith('/api/') || path === '/v1' || path.startsWith('/v1/');
}

/** The path of a request, without its query. */
export function pathOf(request: FastifyRequest): string {
  const query = request.url.indexOf('?');
  return query === -1 ? request.url : request.url.slice(0, query);
}

export class Cors {
  private readonly anyOrigin: boolean;
  private readonly origins: ReadonlySet<string>;

  /** `origins`: as HERALD_CORS_ORIGINS lists them (`*` for any). */
  constructor(origins: readonly string[]) {
    this.anyOrigin = origins.includes('*');
    this.origins = new Set(origins.filter((origin) => origin !== '*'));
  }

  /** False when no origin is configured: then no answer carries a CORS header. */
  get enabled(): boolean {
    return this.anyOrigin || this.origins.size > 0;
  }

  /** The origin to name in Access-Control-Allow-Origin, or undefined when the answer gets no CORS headers. */
  private allowedOrigin(request: FastifyRequest): string | undefined {
    const origin = request.headers.origin;
    if (typeof origin !== 'string' || origin === '' || !isBrowserApiPath(pathOf(request))) return undefined;
    return this.anyOrigin || this.origins.has(origin.toLowerCase()) ? origin : undefined;
  }

  /**
   * An onRequest hook: names the allowed origin on every answer, errors included, so the page
   * can read why it was refused. The answer depends on Origin, so caches are told (Vary).
   */
  readonly onRequest = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!isBrowserApiPath(pathOf(request))) return;
    reply.header('vary', 'Origin');
    const origin = this.allowedOrigin(request);
    if (origin) reply.header('access-control-allow-origin', origin);
  };

  /** Adds a preflight's answer headers (for an allowed origin) to an OPTIONS answer. */
  preflight(request: FastifyRequest, reply: FastifyReply, methods: readonly string[]): void {
    if (!this.allowedOrigin(request) || request.headers['access-control-request-method'] === undefined) return;
    reply.header('access-control-allow-methods', methods.join(', '));
    reply.header('access-control-allow-headers', ALLOWED_HEADERS);
    reply.header('access-control-max-age', String(PREFLIGHT_MAX_AGE_S));
  }
}
