import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import pino, { type Logger } from 'pino';
import { Registry } from 'prom-client';
import { checkDataDir, checkNamedFiles, ConfigError, type Config } from './config.ts';
import { HeraldError } from './errors.ts';
import { createMetrics, liveConnectionCounts, pushOutcomes, type Metrics } from './metrics.ts';
import { openStore, type Store } from './store/db.ts';
import { outboxBacklog, SqlDeliveryStore } from './store/deliveries.ts';
import { LocalBus, type Bus } from './cluster/bus.ts';
import type { SpentSignatures } from './cluster/spent-signatures.ts';
import type { PushChannel, PushProvider } from './model/channel.ts';
import { isCustomKind } from './model/notification.ts';
import { Hub } from './notify/hub.ts';
import { Notifier } from './notify/notifier.ts';
import { feedHead, feedReader } from './notify/feed.ts';
import { startOutbox } from './notify/outbox.ts';
import { PreferenceView } from './notify/preferences.ts';
import { NotificationWatchers } from './notify/watchers.ts';
import { sendTestPush, type TestPushResult } from './notify/push-test.ts';
import { checkStation, deviceOf } from './chat/devices.ts';
import { StationUsers } from './chat/station-users.ts';
import { apiTokens, blocks, changes, conversations, devices, friends, gateway, preferences, users } from './chat/services.ts';
import { matrixGateway } from './chat/matrix-pushers.ts';
import { certificateFingerprint, loadTls } from './tls.ts';
import { loadAdminTokenHash, type AdminTokenHash } from './admin-token.ts';
import { makePrivateDir } from './files.ts';
import { dataKeyFromDir, SecretBox } from './store/secrets.ts';
import type { Endpoints } from './api/http.ts';
import { operationsApi } from './api/operations.ts';
import { Cors } from './api/cors.ts';
import { RouteTable, unmatchedRequestHandler } from './api/unmatched.ts';
import { loadWeb, webDistDir, webPages } from './api/web.ts';
import { limitByAddress, retryAfterHeader } from './api/rate-limited.ts';
import { RateLimiter } from './limits/limiter.ts';
import { clientErrorHandler } from './api/client-errors.ts';
import { drainOversizedBodies } from './api/body-limit.ts';
import { isOzekiApi, ozekiApi } from './api/ozeki/plugin.ts';
import { restApi } from './api/rest/plugin.ts';
import { matrixApi } from './api/matrix/plugin.ts';
import { web3mqApi } from './api/web3mq/plugin.ts';
import { ReplayGuard } from './api/web3mq/replay.ts';
import { Web3mqLiveEndpoint } from './api/web3mq/live.ts';
import { loginKeys } from './api/web3mq/login-keys.ts';
import { attachMainKey } from './api/web3mq/keys.ts';
import { web3mqServices } from './api/web3mq/services.ts';
import { LiveServer } from './channels/live/server.ts';
import { WebSocketChannel } from './channels/websocket.ts';
import { UdpChannel } from './channels/udp.ts';
import { LiveCatchUp } from './channels/live/catch-up.ts';
import { loadVapidKeys, type VapidKeys } from './channels/webpush/vapid-keys.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request body exactly as received (Ozeki signatures are over these bytes). */
    rawBody?: string;
  }
}

/** What one running node is made of (tests and tools read it; parts get only what they use). */
export interface NodeParts {
  config: Config;
  store: Store;
  notifier: Notifier;
  hub: Hub;
  /** Reaches every node: committed notifications, and devices to disconnect. */
  bus: Bus;
  /** This node's view of users' alert preferences. */
  preferences: PreferenceView;
  log: Logger;
  registry: Registry;
  metrics: Metrics;
  endpoints: Endpoints;
}

export interface RunningApp {
  parts: NodeParts;
  endpoints: Endpoints;
  /** The HTTPS certificate: its file (for curl's --cacert) and SHA-256 fingerprint. */
  tls: { certFile: string; fingerprint: string };
  stop(): Promise<void>;
}

export interface StartOptions {
  /** An already open store (tests share one); otherwise opened from the configuration. */
  store?: Store;
  bus?: Bus;
  /** Where spent Web3MQ signatures are shared with the other nodes (with a bus given here). */
  spentSignatures?: SpentSignatures;
  /** Leave out the outbox dispatcher (tools that only read). */
  withoutOutbox?: boolean;
}

/**
 * The data key: HERALD_SECRET_KEY, or `secret.key` in the data directory (made there once).
 * `made` names the file when it was made just now.
 */
function configuredSecrets(config: Config): { secrets: SecretBox; made?: string } {
  if (config.secretKey) return { secrets: new SecretBox(config.secretKey) };
  const { key, file, created } = dataKeyFromDir(config.dataDir);
  return { secrets: new SecretBox(key), made: created ? file : undefined };
}

export async function openConfiguredStore(config: Config, secrets = configuredSecrets(config).secrets): Promise<Store> {
  if (config.databaseUrl) {
    try {
      return await openStore({ databaseUrl: config.databaseUrl, secrets });
    } catch (error) {
      throw new ConfigError(`HERALD_DATABASE_URL: cannot use the database at ${databaseAddress(config.databaseUrl)}: ${reason(error)}`, {
        cause: error,
      });
    }
  }
  const sqliteFile = path.join(config.dataDir, 'herald.db');
  try {
    return await openStore({ sqliteFile, secrets });
  } catch (error) {
    throw new ConfigError(`HERALD_DATA_DIR: cannot open the database ${sqliteFile}: ${reason(error)}`, { cause: error });
  }
}

/** A database URL without its password, for messages. */
function databaseAddress(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}${parsed.pathname}`;
  } catch {
    return 'the configured URL';
  }
}

/** An error in a few words: the innermost cause's message, with its code (ECONNREFUSED). */
function reason(error: unknown): string {
  let root = error as { code?: string; message?: string; cause?: unknown };
  while (root?.cause instanceof Error) root = root.cause;
  const { code, message } = root ?? {};
  const text = message || (root instanceof AggregateError ? root.errors.map(reason).join('; ') : String(root));
  return code && !text.includes(code) ? `${text} (${code})` : text;
}

/**
 * A port or address that cannot be listened on, told as the variable that names it; other
 * errors are left as they are.
 */
function listenError(error: unknown, host: string, port: number, variable: string): unknown {
  const cause = { cause: error };
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return new ConfigError(`port ${port} (${variable}) is already in use on ${host}`, cause);
    case 'EACCES':
      return new ConfigError(
        `port ${port} (${variable}) may not be used by this user on ${host}${port < 1024 ? ' (ports below 1024 need privileges)' : ''}`,
        cause,
      );
    case 'EADDRNOTAVAIL':
      return new ConfigError(`HERALD_HOST ${host} is not an address of this machine`, cause);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new ConfigError(`HERALD_HOST ${host} does not resolve to an address`, cause);
    default:
      return error;
  }
}

async function listenOn(server: FastifyInstance, host: string, port: number, variable: string): Promise<void> {
  try {
    await server.listen({ host, port });
  } catch (error) {
    throw listenError(error, host, port, variable);
  }
}

/**
 * The data directory, owner-only when Herald makes it, and the admin token's hash; what
 * there is to tell about them goes to the log (a generated admin token, once).
 */
function prepareDataDir(config: Config, log: Logger): AdminTokenHash {
  const { openToOthers } = makePrivateDir(config.dataDir);
  if (openToOthers) {
    log.warn(`${config.dataDir} may be read by other users: it holds the database and keys; chmod 700 it`);
  }
  const { hash, news } = loadAdminTokenHash(config);
  if (news) log[news.level](news.message);
  return hash;
}

/*
 * The push channels: which provider is on, and how it sends, is decided here and nowhere else.
 */

/** What an operator sets to turn a provider on. */
const CONFIGURATION_HINTS = {
  apns: 'set HERALD_APNS_KEY_FILE, HERALD_APNS_KEY_ID, HERALD_APNS_TEAM_ID and HERALD_APNS_TOPIC',
  fcm: 'set HERALD_FCM_SERVICE_ACCOUNT',
} as const;

/** Why a provider cannot be used, or undefined when it is configured. */
export function unconfiguredReason(config: Config, provider: string): string | undefined {
  if (provider === 'apns' && !config.apns) return `APNs is not configured (${CONFIGURATION_HINTS.apns})`;
  if (provider === 'fcm' && !config.fcm) return `FCM is not configured (${CONFIGURATION_HINTS.fcm})`;
  // Web Push needs no account: its VAPID key pair is generated when none is configured.
  if (provider !== 'apns' && provider !== 'fcm' && provider !== 'webpush') return `no push channel for provider ${provider}`;
  return undefined;
}

/**
 * Opens the channel of one provider. A configured provider that cannot start is an error.
 * `threads`: APNs and FCM send from worker threads when their configuration has them (the
 * outbox); a one-off push (a device's test push) sends from the calling thread.
 */
async function openPushChannel(
  config: Config,
  provider: PushProvider,
  vapid: VapidKeys,
  log: Logger | undefined,
  { threads = false } = {},
): Promise<PushChannel> {
  if (provider === 'apns' && threads && config.apns!.threads > 0) {
    const { startApnsThreads } = await import('./channels/apns/thread.ts');
    return startApnsThreads(config, config.apns!.threads, log);
  }
  if (provider === 'fcm' && threads && config.fcm!.threads > 0) {
    const { startFcmThreads } = await import('./channels/fcm/thread.ts');
    return startFcmThreads(config, config.fcm!.threads, log);
  }
  if (provider === 'apns') {
    const { ApnsChannel } = await import('./channels/apns/channel.ts');
    return ApnsChannel.fromConfig(config, log);
  }
  if (provider === 'fcm') {
    const { FcmChannel } = await import('./channels/fcm/channel.ts');
    return FcmChannel.fromConfig(config, log);
  }
  const { WebPushChannel } = await import('./channels/webpush/channel.ts');
  return WebPushChannel.fromConfig(config, vapid, log);
}

/** The configured APNs and FCM channels, and Web Push, for the outbox. */
async function openPushChannels(config: Config, vapid: VapidKeys, log: Logger): Promise<PushChannel[]> {
  const channels: PushChannel[] = [];
  for (const provider of ['apns', 'fcm'] as const) {
    const why = unconfiguredReason(config, provider);
    if (!why) channels.push(await openPushChannel(config, provider, vapid, log, { threads: true }));
    else {
      log.warn(
        `${why}: ${provider === 'apns' ? 'iOS and Mac' : 'Android'} devices get no push; their pushes wait in the outbox until it is configured or they expire`,
      );
    }
  }
  channels.push(await openPushChannel(config, 'webpush', vapid, log));
  return channels;
}

/** `herald push test <station>`: one push straight to the device's provider, with its answer. */
export async function testPush(config: Config, store: Store, stationText: string, log?: Logger): Promise<TestPushResult> {
  const station = checkStation(stationText);
  return sendTestPush(
    {
      deviceOf: (s) => deviceOf(store.db, s),
      badgeOf: async (userId) => (await feedHead(store.db, userId)).badge,
      async openChannel(provider) {
        const unavailable = unconfiguredReason(config, provider);
        if (unavailable) return { unavailable };
        return openPushChannel(config, provider as PushProvider, loadVapidKeys(config), log);
      },
    },
    station,
  );
}

/*
 * HTTP and HTTPS: the same APIs on both ports.
 */

interface HttpParts {
  config: Config;
  log: Logger;
  metrics: Metrics;
  limiter: RateLimiter;
  apis: FastifyPluginAsync[];
}

function buildHttp(parts: HttpParts, https?: { cert: string; key: string }): FastifyInstance {
  const { config, metrics } = parts;
  // Without a request timeout a client that sends its body a byte at a time holds its
  // connection for ever (Fastify's default is none); Node checks for expired requests
  // every connectionsCheckingInterval. Upgraded WebSockets are no longer requests.
  const requestTimeout = config.requestTimeoutMs;
  const timeouts = {
    connectionsCheckingInterval: Math.min(30_000, Math.ceil(requestTimeout / 2)),
    headersTimeout: Math.min(60_000, requestTimeout),
  };
  const app = Fastify({
    loggerInstance: parts.log.child({ server: https ? 'https' : 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    // Requests are not logged one by one, so none needs a child logger of its own (Fastify
    // would make one per request); errors are logged through the node's logger.
    childLoggerFactory: (logger) => logger,
    bodyLimit: config.bodyLimit,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestTimeout,
    // Node's own answers (408, 414, 431, 400) in the error shape of the path's API.
    clientErrorHandler: clientErrorHandler(requestTimeout),
    // A TLS handshake gets as long as a request (Node's default is 120 s), so a connection
    // that never finishes it does not hold a socket for longer than a slow request can.
    ...(https ? { https: { ...https, ...timeouts, handshakeTimeout: requestTimeout } } : { http: timeouts }),
  }) as unknown as FastifyInstance;
  app.addHook('preParsing', drainOversizedBodies(config.bodyLimit));

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
    const api = url.startsWith('/api/') ? 'web3mq' : url.startsWith('/v1') ? 'rest' : url.startsWith('/_matrix/') ? 'matrix' : 'ozeki';
    const query = request.query as Record<string, unknown> | undefined;
    // Only known api names become labels: each label value is a series kept for good, so a
    // caller inventing names would otherwise grow the registry without bound.
    const route = api === 'ozeki' ? (isOzekiApi(query?.api) ? query.api : 'unknown') : (request.routeOptions.url ?? 'unknown');
    metrics.httpRequests.inc({ api, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ api, route }, reply.elapsedTime / 1000);
  });

  // Before any route: the table sees every route, and CORS headers reach every answer.
  const routes = new RouteTable();
  app.addHook('onRoute', routes.onRoute);
  const cors = new Cors(config.corsOrigins);
  // Unconfigured, CORS costs the hot path nothing.
  if (cors.enabled) app.addHook('onRequest', cors.onRequest);
  // After CORS, so a browser can read the 429; before the body is read.
  if (parts.limiter.limits('ip')) app.addHook('onRequest', limitByAddress(parts.limiter));
  app.addHook('onError', retryAfterHeader);
  app.setNotFoundHandler(unmatchedRequestHandler(routes, cors));

  const [operations, ozeki, rest, web3mq, matrix, web] = parts.apis;
  app.register(operations);
  app.register(ozeki);
  app.register(rest, { prefix: '/v1' });
  app.register(web3mq, { prefix: '/api' });
  app.register(matrix, { prefix: '/_matrix/push/v1' });
  app.register(web);
  return app;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

async function redisBus(url: string, log: Logger) {
  const { RedisBus } = await import('./cluster/redis-bus.ts');
  // While Redis is away every publish fails: told once per outage, not once per commit.
  let failing = false;
  const bus = await RedisBus.connect(url, {
    onPublishError(error) {
      if (failing) return;
      failing = true;
      log.warn({ err: error }, 'publishing to Redis failed; other nodes read what they missed from the feed');
      setTimeout(() => (failing = false), 10_000).unref();
    },
  });
  if (bus.dropRate > 0) log.warn({ dropRate: bus.dropRate }, 'HERALD_TEST_BUS_DROP: received bus messages are dropped on purpose');
  return bus;
}

/**
 * Composes one node: store, bus, hub, notifier, HTTP(S) APIs, WebSocket, UDP, push channels
 * and outbox. Every implementation is picked here.
 */
export async function startApp(configured: Config, options: StartOptions = {}): Promise<RunningApp> {
  // What the start needs of the file system, told in one line per variable before anything opens.
  const missing = [checkDataDir(configured.dataDir), ...checkNamedFiles(configured)].filter((problem) => problem !== undefined);
  if (missing.length > 0) throw new ConfigError(missing[0], { problems: missing });
  const log = pino({ level: configured.logLevel });
  const config = configured;
  const adminTokenHash = prepareDataDir(config, log);
  let store = options.store;
  if (!store) {
    const { secrets, made } = configuredSecrets(config);
    if (made) {
      log[config.databaseUrl ? 'warn' : 'info'](
        `made the data key ${made}: it seals API keys and UDP secrets in the database; back it up with the database` +
          (config.databaseUrl ? ', and give every other node the same key (HERALD_SECRET_KEY, or a copy of this file)' : ''),
      );
    }
    store = await openConfiguredStore(config, secrets);
  }
  const opened = store;
  const closeStore = async () => {
    if (!options.store) await opened.close();
  };

  // One node alone keeps everything in process; with Redis, notifications, disconnects and
  // spent signatures reach every node.
  let bus: Bus;
  let spentSignatures: SpentSignatures | undefined;
  if (options.bus) {
    bus = options.bus;
    spentSignatures = options.spentSignatures;
  } else if (config.redisUrl) {
    const redis = await redisBus(config.redisUrl, log).catch(async (error: unknown) => {
      await closeStore();
      throw new ConfigError(`HERALD_REDIS_URL: cannot reach Redis: ${reason(error)}`, { cause: error });
    });
    bus = redis;
    spentSignatures = redis;
  } else {
    bus = new LocalBus();
  }

  const hub = new Hub();
  const registry = new Registry();
  const metrics = createMetrics(registry);
  // Users' alert preferences, in memory for the hot path; every node re-reads a user who changed.
  const preferenceView = await PreferenceView.load(store.db, {
    onSilenced: (reason, count) => metrics.preferenceSilenced.inc({ reason }, count),
  });
  bus.onPreferences(
    (userId) => void preferenceView.reloadUser(userId).catch((error) => log.warn({ err: error, userId }, 're-reading preferences failed')),
  );
  bus.onDisconnect(({ station }) => preferenceView.forgetStation(station));
  const notifier = new Notifier(
    store,
    bus,
    (error) => log.error({ err: error }, 'publishing committed notifications failed; devices get them on resume'),
    preferenceView,
    { holdMs: config.pushHoldMs, activeWindowMs: config.activeWindowMs },
  );
  const endpoints: Endpoints = { http: '', https: '', ws: '', wss: '', udp: '' };
  const parts: NodeParts = { config, store, notifier, hub, bus, preferences: preferenceView, log, registry, metrics, endpoints };
  // From other nodes, only the notifications of users with live connections here are read.
  bus.subscribe(
    (notifications) => hub.dispatch(notifications),
    (userId) => hub.connectionsOf(userId) !== undefined,
  );
  // The console's live tail: every node's notifications, as the bus brings them.
  const watchers = new NotificationWatchers();
  bus.subscribe(watchers.publish, () => watchers.size > 0);
  bus.onDisconnect(({ userId, station, reason }) => hub.disconnectStation(userId, station, reason));
  notifier.onCommitted((notifications) => {
    // Counted per type first: a labelled inc costs a label hash and a map lookup, and a
    // group message commits thousands of notifications of one type.
    const byType = new Map<string, number>();
    for (const n of notifications) byType.set(n.type, (byType.get(n.type) ?? 0) + 1);
    // A backend's own kinds count as one label value: each value is a series kept for good.
    for (const [type, count] of byType) metrics.notificationsCreated.inc({ type: isCustomKind(type) ? 'custom' : type }, count);
    metrics.activity.add('notifications', notifications.length);
  });

  // Per-node memories, made once and shared by the HTTP and HTTPS servers and the live sockets.
  // A VAPID key file that cannot be used stops the node before it listens (one is made if none exists).
  const vapid = loadVapidKeys(config);
  const stationUsers = new StationUsers(store.db, store.secrets, bus);
  const replayGuard = new ReplayGuard(spentSignatures);
  // Per node: each node counts only the calls it takes (README, "Rate limits").
  const limiter = new RateLimiter(config.rateLimits, metrics);
  // The chat layer, bound to this node's database, notifier and bus, as the APIs use it.
  const chatUsers = users(store.db, store.secrets, bus);
  const chatDevices = devices(store.db, store.secrets, bus);
  const chatFriends = friends(store.db, notifier);
  const chatPreferences = preferences(store.db, preferenceView, bus);

  const apis = [
    operationsApi({
      ping: async () => void (await store.db.selectFrom('users').select('id').limit(1).execute()),
      registry,
      adminTokenHash,
    }),
    ozekiApi({
      users: chatUsers,
      devices: chatDevices,
      friends: chatFriends,
      blocks: blocks(store.db),
      changes: changes(store.db),
      conversations: conversations(store.db, notifier),
      preferences: chatPreferences,
      stationUsers,
      endpoints,
      vapidPublicKey: vapid.publicKey,
      bodyLimit: config.bodyLimit,
      limits: limiter,
      log,
    }),
    restApi({
      users: chatUsers,
      devices: chatDevices,
      friends: chatFriends,
      gateway: gateway(store.db, notifier),
      apiTokens: apiTokens(store.db),
      adminTokenHash,
      vapidPublicKey: vapid.publicKey,
      attachWeb3mqKey: (userId, fields) => attachMainKey(store.db, userId, fields),
      limits: limiter,
      preferences: chatPreferences,
      stats: async () => ({
        connections: await liveConnectionCounts(metrics),
        outbox: await outboxBacklog(store.db),
        series: metrics.activity.snapshot(),
      }),
      testPush: (station) => testPush(config, store, station, log),
      watchNotifications: (watcher) => watchers.watch(watcher),
      log,
    }),
    web3mqApi({ web3mq: web3mqServices(store.db, store.secrets, replayGuard), notifier, limits: limiter, log }),
    matrixApi({
      gateway: matrixGateway(notifier, {
        apps: config.matrixApps,
        allowPrivateEndpoints: config.vapid.allowPrivateEndpoints,
        secrets: store.secrets,
      }),
      log,
    }),
    webPages(loadWeb(webDistDir(), log)),
  ];
  // A start that cannot listen closes what it opened (a test or tool in the same process goes on).
  async function abandon(...servers: FastifyInstance[]) {
    await Promise.allSettled(servers.map((server) => server.close()));
    preferenceView.close();
    if (!options.bus) await bus.close().catch(() => undefined);
    await closeStore();
  }
  const tls = await loadTls(config);
  const http = buildHttp({ config, log, metrics, limiter, apis });
  let https: FastifyInstance;
  try {
    https = buildHttp({ config, log, metrics, limiter, apis }, { cert: tls.cert, key: tls.key });
  } catch (error) {
    await abandon();
    const names = config.tlsCert ? 'HERALD_TLS_CERT and HERALD_TLS_KEY' : `the TLS pair in HERALD_DATA_DIR (${tls.certFile})`;
    throw new ConfigError(`${names}: not a usable certificate and key: ${reason(error)}`, { cause: error });
  }
  try {
    await listenOn(http, config.host, config.httpPort, 'HERALD_HTTP_PORT');
    await listenOn(https, config.host, config.httpsPort, 'HERALD_HTTPS_PORT');
  } catch (error) {
    await abandon(http, https);
    throw error;
  }
  const host = config.publicHost ?? urlHost(config.host);
  const httpPort = (http.server.address() as AddressInfo).port;
  const httpsPort = (https.server.address() as AddressInfo).port;
  endpoints.http = `http://${host}:${httpPort}`;
  endpoints.https = `https://${host}:${httpsPort}`;
  endpoints.ws = `ws://${host}:${httpPort}/ws`;
  endpoints.wss = `wss://${host}:${httpsPort}/ws`;

  // The live channels: /ws and Web3MQ's /messages on one live-socket server, and UDP.
  const feed = feedReader(store.db);
  const live = new LiveServer([http.server, https.server], { hub, metrics, log, limits: limiter });
  live.register(new WebSocketChannel({ feed, devices: chatDevices, metrics, log, pingIntervalMs: live.pingIntervalMs }));
  live.register(new Web3mqLiveEndpoint({ keys: loginKeys(store.db), replayGuard, metrics, log }));
  const udp = new UdpChannel({ config, feed, devices: chatDevices, hub, bus, metrics, limits: limiter, log });
  try {
    await udp.listen();
  } catch (error) {
    await Promise.allSettled([live.close(), udp.close()]);
    await abandon(http, https);
    throw listenError(error, config.host, config.udpPort, 'HERALD_UDP_PORT');
  }
  endpoints.udp = `udp://${host}:${udp.port}`;
  // Live delivery at least once across nodes: what the bus may have lost is read from the feed.
  const catchUp = new LiveCatchUp({
    hub,
    feed,
    ownersOf: chatDevices.ownersOf,
    disconnect: (disconnect) => bus.disconnectHere(disconnect),
    log: log.child({ part: 'catch-up' }),
    onRun: ({ delivered, disconnected }) => {
      metrics.catchUpRuns.inc();
      metrics.catchUpDelivered.inc(delivered);
      metrics.catchUpDisconnected.inc(disconnected);
    },
  });
  bus.onPossibleLoss((why) => {
    metrics.busPossibleLosses.inc();
    log.debug({ why }, 'bus messages may have been lost; catching up from the feed');
    catchUp.request();
  });
  const outboxLog = log.child({ part: 'outbox' });
  const outbox = options.withoutOutbox
    ? undefined
    : await startOutbox({
        deliveries: new SqlDeliveryStore(store.db, store.dialect),
        channels: await openPushChannels(config, vapid, outboxLog),
        log: outboxLog,
        pushes: pushOutcomes(metrics),
        alerts: preferenceView,
        holds: metrics.pushHolds,
      });
  // Only a commit that queued pushes wakes the dispatcher: a message to users without push
  // devices costs no claim query (retries and other nodes' rows are found by its timer).
  // Rows due at once are written leased to this node's dispatcher and handed to it with the
  // commit, so it reads them back instead of claiming them.
  if (outbox) {
    notifier.leasePushesTo(() => outbox.lease());
    notifier.onCommitted((notifications, pushesQueued, pushesHeld, pushesLeased) => {
      if (pushesHeld > 0) metrics.pushHolds.inc({ outcome: 'held' }, pushesHeld);
      if (pushesQueued > pushesHeld) {
        outbox.remember(notifications);
        outbox.take(pushesLeased);
        outbox.kick();
      }
    });
  }

  log.info({ endpoints, database: store.dialect }, 'Herald is listening');

  let stopped = false;
  return {
    parts,
    endpoints,
    tls: { certFile: tls.certFile, fingerprint: certificateFingerprint(tls.cert) },
    async stop() {
      if (stopped) return;
      stopped = true;
      // In-flight requests finish first; then the live channels and the dispatcher stop,
      // and the database closes last. WebSockets close alongside the HTTP servers: their
      // upgraded sockets would otherwise keep the servers' close waiting (a device that
      // misses something meanwhile resumes with `since`).
      await Promise.all([http.close(), https.close(), live.close()]);
      await udp.close();
      await catchUp.close();
      await outbox?.close();
      // What was accepted commits before the database closes; anything later is refused.
      await notifier.close();
      preferenceView.close();
      await bus.close();
      if (!options.store) await store.close();
    },
  };
}
