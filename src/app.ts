import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Config } from './config.ts';
import type { AppContext, Endpoints } from './context.ts';
import { HeraldError } from './errors.ts';
import { createMetrics } from './metrics.ts';
import { openStore, type Store } from './store/db.ts';
import { LocalBus, type Bus } from './cluster/bus.ts';
import { Hub } from './notify/hub.ts';
import { Notifier } from './notify/notifier.ts';
import { loadTls } from './tls.ts';
import { isOzekiApi, ozekiApi } from './api/ozeki/plugin.ts';
import { restApi, sameSecret } from './api/rest/plugin.ts';
import { web3mqApi } from './api/web3mq/plugin.ts';
import { Web3mqLiveEndpoint } from './api/web3mq/live.ts';
import { loginKeys } from './api/web3mq/login-keys.ts';
import { replayGuardOf } from './api/web3mq/replay.ts';
import { LiveServer } from './channels/live/server.ts';
import { WebSocketChannel } from './channels/websocket.ts';
import { UdpChannel } from './channels/udp.ts';
import { deviceDirectory } from './chat/devices.ts';
import { feedReader } from './notify/feed.ts';
import { startOutbox } from './notify/outbox.ts';
import { loadVapidKeys } from './channels/webpush.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request body exactly as received (Ozeki signatures are over these bytes). */
    rawBody?: string;
  }
}

export interface RunningApp {
  ctx: AppContext;
  endpoints: Endpoints;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** An already open store (tests share one); otherwise opened from the configuration. */
  store?: Store;
  bus?: Bus;
  /** Leave out the outbox dispatcher (tools that only read). */
  withoutOutbox?: boolean;
}

export async function openConfiguredStore(config: Config): Promise<Store> {
  return openStore(
    config.databaseUrl ? { databaseUrl: config.databaseUrl } : { sqliteFile: path.join(config.dataDir, 'herald.db') },
  );
}

/** The admin token: configured, or generated once into the data directory and printed then. */
function adminToken(config: Config, log: pino.Logger): string {
  if (!config.adminTokenGenerated) return config.adminToken;
  const file = path.join(config.dataDir, 'admin-token');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  fs.mkdirSync(config.dataDir, { recursive: true });
  fs.writeFileSync(file, config.adminToken + '\n', { mode: 0o600 });
  log.warn(`HERALD_ADMIN_TOKEN is unset; generated an admin token (kept in ${file}): ${config.adminToken}`);
  return config.adminToken;
}

function buildHttp(ctx: AppContext, https?: { cert: string; key: string }): FastifyInstance {
  // Without a request timeout a client that sends its body a byte at a time holds its
  // connection for ever (Fastify's default is none); Node checks for expired requests
  // every connectionsCheckingInterval. Upgraded WebSockets are no longer requests.
  const requestTimeout = ctx.config.requestTimeoutMs;
  const timeouts = {
    connectionsCheckingInterval: Math.min(30_000, Math.ceil(requestTimeout / 2)),
    headersTimeout: Math.min(60_000, requestTimeout),
  };
  const app = Fastify({
    loggerInstance: ctx.log.child({ server: https ? 'https' : 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    // Requests are not logged one by one, so none needs a child logger of its own (Fastify
    // would make one per request); errors are logged through the node's logger.
    childLoggerFactory: (logger) => logger,
    bodyLimit: ctx.config.bodyLimit,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestTimeout,
    ...(https ? { https: { ...https, ...timeouts } } : { http: timeouts }),
  }) as unknown as FastifyInstance;

  // Keep the raw text of every body: Ozeki signatures are computed over it and message
  // data must come back byte for byte.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    request.rawBody = text;
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (error) {
      done(new HeraldError(400, `malformed JSON body: ${(error as Error).message}`), undefined);
    }
  });

  app.addHook('onResponse', async (request, reply) => {
    const url = request.url;
    const api = url.startsWith('/api/') ? 'web3mq' : url.startsWith('/v1') ? 'rest' : 'ozeki';
    const query = request.query as Record<string, unknown> | undefined;
    // Only known api names become labels: each label value is a series kept for good, so a
    // caller inventing names would otherwise grow the registry without bound.
    const route = api === 'ozeki' ? (isOzekiApi(query?.api) ? query.api : 'unknown') : (request.routeOptions.url ?? 'unknown');
    ctx.metrics.httpRequests.inc({ api, route, status: String(reply.statusCode) });
    ctx.metrics.httpDuration.observe({ api, route }, reply.elapsedTime / 1000);
  });

  app.get('/healthz', async () => {
    await ctx.store.db.selectFrom('users').select('id').limit(1).execute();
    return { status: 'ok' };
  });
  // The metrics tell who is busy and what fails: only the operator reads them (Prometheus
  // sends the admin token with `authorization: { credentials: … }` or `bearer_token`).
  app.get('/metrics', async (request, reply) => {
    const auth = request.headers.authorization;
    if (typeof auth !== 'string' || !auth.startsWith('Bearer ') || !sameSecret(auth.slice(7).trim(), ctx.config.adminToken)) {
      return reply
        .status(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'send Authorization: Bearer <admin token> to read the metrics' });
    }
    reply.header('content-type', ctx.registry.contentType);
    return ctx.registry.metrics();
  });

  app.register(ozekiApi(ctx));
  app.register(restApi(ctx), { prefix: '/v1' });
  app.register(web3mqApi(ctx), { prefix: '/api' });
  return app;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Composes one node: store, bus, hub, notifier, HTTP(S) APIs, WebSocket, UDP and outbox. */
export async function startApp(config: Config, options: StartOptions = {}): Promise<RunningApp> {
  const log = pino({ level: config.logLevel });
  const store = options.store ?? (await openConfiguredStore(config));
  const bus: Bus = options.bus ?? (config.redisUrl ? await redisBus(config.redisUrl) : new LocalBus());
  const hub = new Hub();
  const notifier = new Notifier(store, bus, (error) =>
    log.error({ err: error }, 'publishing committed notifications failed; devices get them on resume'),
  );
  const registry = new Registry();
  const metrics = createMetrics(registry);
  const endpoints: Endpoints = { http: '', https: '', ws: '', wss: '', udp: '' };
  const ctx: AppContext = {
    config: { ...config, adminToken: adminToken(config, log) },
    store,
    notifier,
    hub,
    bus,
    log,
    registry,
    metrics,
    endpoints,
  };
  bus.subscribe((notifications) => hub.dispatch(notifications));
  bus.onDisconnect(({ userId, station, reason }) => hub.disconnectStation(userId, station, reason));
  notifier.onCommitted((notifications) => {
    // Counted per type first: a labelled inc costs a label hash and a map lookup, and a
    // group message commits thousands of notifications of one type.
    const byType = new Map<string, number>();
    for (const n of notifications) byType.set(n.type, (byType.get(n.type) ?? 0) + 1);
    for (const [type, count] of byType) metrics.notificationsCreated.inc({ type }, count);
  });

  // A VAPID key file that cannot be used stops the node before it listens (and one is made if none exists).
  loadVapidKeys(config);
  const tls = await loadTls(config);
  const http = buildHttp(ctx);
  const https = buildHttp(ctx, tls);
  await http.listen({ host: config.host, port: config.httpPort });
  await https.listen({ host: config.host, port: config.httpsPort });
  const host = config.publicHost ?? urlHost(config.host);
  const httpPort = (http.server.address() as AddressInfo).port;
  const httpsPort = (https.server.address() as AddressInfo).port;
  endpoints.http = `http://${host}:${httpPort}`;
  endpoints.https = `https://${host}:${httpsPort}`;
  endpoints.ws = `ws://${host}:${httpPort}/ws`;
  endpoints.wss = `wss://${host}:${httpsPort}/ws`;

  // The live channels: /ws and Web3MQ's /messages on one live-socket server, and UDP.
  const feed = feedReader(store.db);
  const devices = deviceDirectory(store.db);
  const live = new LiveServer([http.server, https.server], { hub, metrics, log });
  live.register(new WebSocketChannel({ feed, devices, metrics, log, pingIntervalMs: live.pingIntervalMs }));
  live.register(new Web3mqLiveEndpoint({ keys: loginKeys(store.db), replayGuard: replayGuardOf(ctx), metrics, log }));
  const udp = new UdpChannel({ config, feed, devices, hub, bus, metrics, log });
  await udp.listen();
  endpoints.udp = `udp://${host}:${udp.port}`;
  const outbox = options.withoutOutbox ? undefined : await startOutbox(ctx);
  // Only a commit that queued pushes wakes the dispatcher: a message to users without push
  // devices costs no claim query (retries and other nodes' rows are found by its timer).
  if (outbox) {
    notifier.onCommitted((_notifications, pushesQueued) => {
      if (pushesQueued > 0) outbox.kick();
    });
  }

  log.info({ endpoints, database: store.dialect }, 'Herald is listening');

  let stopped = false;
  return {
    ctx,
    endpoints,
    async stop() {
      if (stopped) return;
      stopped = true;
      // In-flight requests finish first; then the live channels and the dispatcher stop,
      // and the database closes last. WebSockets close alongside the HTTP servers: their
      // upgraded sockets would otherwise keep the servers' close waiting (a device that
      // misses something meanwhile resumes with `since`).
      await Promise.all([http.close(), https.close(), live.close()]);
      await udp.close();
      await outbox?.close();
      await bus.close();
      if (!options.store) await store.close();
    },
  };
}

async function redisBus(url: string): Promise<Bus> {
  const { RedisBus } = await import('./cluster/redis-bus.ts');
  return RedisBus.connect(url);
}
