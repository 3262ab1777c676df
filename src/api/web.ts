import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Logger } from 'pino';

/*
 * The pages people open: the web app at /, its service worker at /sw.js and the admin console
 * at /console, as web/build.mjs bundled them into web/dist. Pages and the worker are checked
 * on every load (no-cache); the hashed assets they name never change, so a browser keeps them
 * a year. Every answer carries a Content-Security-Policy that allows scripts, styles and
 * connections from Herald itself only: no inline script, no CDN.
 */

export interface WebManifest {
  pages: Record<string, { html: string; script: string; style: string; scriptGzipBytes: number }>;
  assets: Record<string, string>;
  serviceWorker: string;
}

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "worker-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const PAGE_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** The folder web/build.mjs writes: web/dist under the package root (found from this file, built or not). */
export function webDistDir(from = import.meta.dirname): string {
  let dir = from;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve('web/dist');
    dir = parent;
  }
  return path.join(dir, 'web', 'dist');
}

/** Reads the built pages once; a missing build is logged and answered with 503 until the node restarts. */
export function loadWeb(dir: string, log: Logger): { manifest: WebManifest; files: Map<string, Buffer> } | undefined {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as WebManifest;
    const files = new Map<string, Buffer>();
    for (const page of Object.values(manifest.pages)) files.set(page.html, fs.readFileSync(path.join(dir, page.html)));
    files.set(manifest.serviceWorker, fs.readFileSync(path.join(dir, manifest.serviceWorker)));
    for (const asset of Object.keys(manifest.assets)) files.set(`assets/${asset}`, fs.readFileSync(path.join(dir, 'assets', asset)));
    return { manifest, files };
  } catch (error) {
    log.warn({ err: error, dir }, 'the web app is not built (npm run build): / and /console answer 503');
    return undefined;
  }
}

export function webPages(web: ReturnType<typeof loadWeb>): FastifyPluginAsync {
  return async (app) => {
    const send = (reply: FastifyReply, file: string, type: string, headers: Record<string, string>) => {
      const body = web?.files.get(file);
      if (!body) return reply.status(503).headers(PAGE_HEADERS).send({ error: 'the web app is not built: run npm run build' });
      return reply.headers(headers).type(type).send(body);
    };
    const page = (name: string) => (_request: unknown, reply: FastifyReply) =>
      send(reply, web?.manifest.pages[name]?.html ?? `${name}.html`, 'text/html; charset=utf-8', PAGE_HEADERS);

    const appPage = page('app');
    app.get('/', (request, reply) => {
      // An Ozeki call sent with GET: the Ozeki API's own 405, as for its other paths.
      const query = request.query as Record<string, unknown>;
      if ('srv' in query || 'api' in query) {
        return reply.status(405).header('allow', 'OPTIONS, POST').send({ status: 'ERROR', errormessage: '/ takes OPTIONS, POST, not GET' });
      }
      return appPage(request, reply);
    });
    app.get('/console', page('console'));
    app.get('/sw.js', (_request, reply) =>
      send(reply, 'sw.js', 'text/javascript; charset=utf-8', { ...PAGE_HEADERS, 'service-worker-allowed': '/' }),
    );
    app.get<{ Params: { file: string } }>('/assets/:file', (request, reply) => {
      const type = web?.manifest.assets[request.params.file];
      if (!type) return reply.status(404).send({ error: `no asset ${request.params.file}` });
      return send(reply, `assets/${request.params.file}`, type, {
        ...PAGE_HEADERS,
        'cache-control': request.params.file.startsWith('favicon') ? 'public, max-age=86400' : 'public, max-age=31536000, immutable',
      });
    });
  };
}
