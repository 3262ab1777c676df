import os from 'node:os';
import path from 'node:path';

/** The whole configuration of one Herald node, read once from the environment. */
export interface Config {
  dataDir: string;
  databaseUrl?: string;
  redisUrl?: string;
  host: string;
  httpPort: number;
  httpsPort: number;
  udpPort: number;
  /** How often a UDP client repeats its hello (told to clients; keeps NAT bindings open). */
  udpKeepAliveMs: number;
  /** A UDP endpoint silent for longer than this is forgotten (default 3 keep-alive intervals). */
  udpEndpointTimeoutMs: number;
  tlsCert?: string;
  tlsKey?: string;
  /**
   * HERALD_ADMIN_TOKEN; when unset, a token is generated once into the data directory, where
   * only its SHA-256 is kept (see admin-token.ts).
   */
  adminToken?: string;
  /**
   * HERALD_SECRET_KEY: the data key that seals API keys and UDP secrets in the database (32
   * bytes). Unset: `secret.key` in the data directory, made once. Every node sharing a
   * database needs the same key.
   */
  secretKey?: Buffer;
  /** The URL clients are told to use, when the server sits behind a proxy or on 0.0.0.0. */
  publicHost?: string;
  apns?: {
    keyFile: string;
    keyId: string;
    teamId: string;
    topic: string;
    url: string;
    /**
     * Worker threads that send the outbox's pushes, each with a connection of its own
     * (HERALD_APNS_THREADS); 0 sends from the main thread.
     */
    threads: number;
  };
  fcm?: {
    serviceAccountFile: string;
    url: string;
  };
  /** Web Push (RFC 8292): always on; the key pair is generated into the data dir unless a file is named. */
  vapid: {
    /** The contact push services may use (mailto: or https:). */
    subject: string;
    keyFile?: string;
    /**
     * Whether a subscription endpoint may be on a loopback, private or link-local address.
     * Off by default: the endpoint is a URL the user chooses, and Herald must not call
     * internal hosts for them. Tests (a loopback double) and closed networks turn it on.
     */
    allowPrivateEndpoints: boolean;
  };
  /**
   * The Matrix push gateway (HERALD_MATRIX_APPS): which provider each Matrix app id is pushed
   * through. Empty when unset: the gateway then answers 404 M_UNRECOGNIZED.
   */
  matrixApps: Map<string, MatrixProvider>;
  caFile?: string;
  logLevel: string;
  /** Largest accepted request body, in bytes. */
  bodyLimit: number;
  /** Longest an HTTP request may take to arrive, headers and body; slower ones get 408. */
  requestTimeoutMs: number;
  /**
   * Web pages that may call the HTTP APIs from a browser (HERALD_CORS_ORIGINS): origins such
   * as `https://chat.example.org`, or `*` for any. Empty: no CORS headers at all.
   */
  corsOrigins: string[];
  /** Token buckets per address, station, user and caller (HERALD_RATE_LIMITS, HERALD_LIMIT_*). */
  rateLimits: RateLimitsConfig;
  /**
   * Presence-aware push hold: alerting pushes to a user with a device in use wait
   * `pushHoldMs` (HERALD_PUSH_HOLD_S; 0 turns it off) for the user to see the notification
   * there; a device is in use when it showed activity within `activeWindowMs` (HERALD_ACTIVE_WINDOW_S).
   */
  pushHoldMs: number;
  activeWindowMs: number;
}

export class ConfigError extends Error {}

export const MATRIX_PROVIDERS = ['apns', 'fcm', 'webpush'] as const;
export type MatrixProvider = (typeof MATRIX_PROVIDERS)[number];

/** A Matrix app id (reverse DNS by convention; the pusher API allows at most 64 characters). */
const MATRIX_APP_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** HERALD_MATRIX_APPS: `app_id=provider` pairs separated by commas. */
function matrixApps(env: NodeJS.ProcessEnv): Map<string, MatrixProvider> {
  const name = 'HERALD_MATRIX_APPS';
  const apps = new Map<string, MatrixProvider>();
  const raw = optional(env, name);
  if (raw === undefined) return apps;
  for (const entry of raw.split(',')) {
    const pair = entry.trim();
    if (pair === '') continue;
    const [appId, provider, ...rest] = pair.split('=').map((part) => part.trim());
    if (provider === undefined || rest.length > 0 || !MATRIX_APP_ID.test(appId)) {
      throw new ConfigError(`${name} must be a comma-separated list of app_id=provider (e.g. im.example.ios=apns), got "${pair}"`);
    }
    if (!(MATRIX_PROVIDERS as readonly string[]).includes(provider)) {
      throw new ConfigError(`${name}: the provider of ${appId} must be one of ${MATRIX_PROVIDERS.join(', ')}, got "${provider}"`);
    }
    if (apps.has(appId)) throw new ConfigError(`${name} names ${appId} twice`);
    apps.set(appId, provider as MatrixProvider);
  }
  return apps;
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ConfigError(`${name} must be a port number between 0 and 65535, got "${raw}"`);
  }
  return value;
}

/** A duration in milliseconds (HERALD_UDP_*_MS); tests shorten them to run in a second. */
function milliseconds(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 50 || value > 3_600_000) {
    throw new ConfigError(`${name} must be a whole number of milliseconds between 50 and 3600000, got "${raw}"`);
  }
  return value;
}

/** A whole number of seconds from `min` to `max`, in milliseconds. */
function seconds(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback * 1000;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number of seconds from ${min} to ${max}, got "${raw}"`);
  }
  return value * 1000;
}

/** `https://chat.example.org, http://localhost:8080` or `*`, each checked to be an origin and nothing more. */
function origins(env: NodeJS.ProcessEnv, name: string): string[] {
  const entries = (optional(env, name) ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  return entries.map((entry) => {
    if (entry === '*') return entry;
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    // A browser sends its Origin without path or trailing slash, lower-cased: compare it so.
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== entry.toLowerCase().replace(/\/$/, '')) {
      throw new ConfigError(`${name} must be a comma-separated list of origins such as https://chat.example.org (or *), got "${entry}"`);
    }
    return url.origin;
  });
}

/*
 * Rate limits: each kind is a token bucket per key, written `<count>/<period>` (`2000/2s`):
 * bursts of up to `count`, refilled at `count` per `period`. `off` turns one kind off.
 */

/** What each kind limits, and its key; the label of herald_rate_limited_total. */
export const RATE_LIMIT_KINDS = ['ip', 'station', 'user', 'login', 'send', 'live', 'live_station', 'udp'] as const;
export type RateLimitKind = (typeof RATE_LIMIT_KINDS)[number];

export interface Rate {
  burst: number;
  perSecond: number;
}

export interface RateLimitsConfig {
  /** HERALD_RATE_LIMITS=0 turns every limit off. */
  enabled: boolean;
  /** Undefined: that kind is off. */
  rates: Record<RateLimitKind, Rate | undefined>;
  /** What a refused credential costs in the login bucket (a good one costs 1). */
  loginFailureCost: number;
}

/** Defaults a normal client never meets; the bench's 1,000 calls/s through one station pass. */
export const RATE_LIMIT_DEFAULTS: Record<RateLimitKind, string> = {
  ip: '6000/2s',
  station: '3000/2s',
  user: '6000/2s',
  login: '200/60s',
  send: '2000/2s',
  live: '5000/10s',
  live_station: '30/60s',
  udp: '1000/10s',
};

const PERIOD_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600 };

function rate(env: NodeJS.ProcessEnv, kind: RateLimitKind): Rate | undefined {
  const name = `HERALD_LIMIT_${kind.toUpperCase()}`;
  const raw = (optional(env, name) ?? RATE_LIMIT_DEFAULTS[kind]).trim();
  if (raw === 'off') return undefined;
  const match = /^(\d{1,9})\/(\d{0,6})([smh])$/.exec(raw);
  const burst = match ? Number(match[1]) : 0;
  const seconds = match ? Number(match[2] || '1') * PERIOD_UNITS[match[3]] : 0;
  if (burst < 1 || seconds < 1) {
    throw new ConfigError(`${name} must be <count>/<period> such as 100/10s, 60/1m or 1000/s, or off; got "${raw}"`);
  }
  return { burst, perSecond: burst / seconds };
}

function rateLimits(env: NodeJS.ProcessEnv): RateLimitsConfig {
  const switchRaw = optional(env, 'HERALD_RATE_LIMITS') ?? '1';
  if (switchRaw !== '0' && switchRaw !== '1') throw new ConfigError(`HERALD_RATE_LIMITS must be 0 or 1, got "${switchRaw}"`);
  const rates = Object.fromEntries(RATE_LIMIT_KINDS.map((kind) => [kind, rate(env, kind)])) as RateLimitsConfig['rates'];
  const costRaw = optional(env, 'HERALD_LIMIT_LOGIN_FAILURE_COST') ?? '20';
  const loginFailureCost = Number(costRaw);
  if (!/^\d{1,6}$/.test(costRaw) || loginFailureCost < 1) {
    throw new ConfigError(`HERALD_LIMIT_LOGIN_FAILURE_COST must be a whole number, at least 1, got "${costRaw}"`);
  }
  return { enabled: switchRaw === '1', rates, loginFailureCost };
}

/** Bytes of a data key (AES-256). */
export const DATA_KEY_BYTES = 32;

/** A data key written as 64 hex digits or as base64 (or base64url) of 32 bytes; undefined for anything else. */
export function parseDataKey(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (!/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) return undefined;
  const bytes = Buffer.from(trimmed, /[-_]/.test(trimmed) ? 'base64url' : 'base64');
  return bytes.length === DATA_KEY_BYTES ? bytes : undefined;
}

function optional(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = path.resolve(optional(env, 'HERALD_DATA_DIR') ?? './data');
  const databaseUrl = optional(env, 'HERALD_DATABASE_URL');
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('HERALD_DATABASE_URL must be a postgres:// URL (leave it unset for SQLite)');
  }
  const tlsCert = optional(env, 'HERALD_TLS_CERT');
  const tlsKey = optional(env, 'HERALD_TLS_KEY');
  if (Boolean(tlsCert) !== Boolean(tlsKey)) {
    throw new ConfigError('HERALD_TLS_CERT and HERALD_TLS_KEY must be set together');
  }
  const givenToken = optional(env, 'HERALD_ADMIN_TOKEN');
  const secretKeyText = optional(env, 'HERALD_SECRET_KEY');
  const secretKey = secretKeyText === undefined ? undefined : parseDataKey(secretKeyText);
  if (secretKeyText !== undefined && !secretKey) {
    throw new ConfigError('HERALD_SECRET_KEY must be 32 bytes as 64 hex digits or as base64 (openssl rand -base64 32)');
  }

  const apnsKeyFile = optional(env, 'HERALD_APNS_KEY_FILE');
  const apnsKeyId = optional(env, 'HERALD_APNS_KEY_ID');
  const apnsTeamId = optional(env, 'HERALD_APNS_TEAM_ID');
  const apnsTopic = optional(env, 'HERALD_APNS_TOPIC');
  const apnsParts = [apnsKeyFile, apnsKeyId, apnsTeamId, apnsTopic];
  if (apnsParts.some(Boolean) && !apnsParts.every(Boolean)) {
    throw new ConfigError('APNs needs all of HERALD_APNS_KEY_FILE, HERALD_APNS_KEY_ID, HERALD_APNS_TEAM_ID and HERALD_APNS_TOPIC');
  }
  const apnsUrl =
    optional(env, 'HERALD_APNS_URL') ??
    (env.HERALD_APNS_SANDBOX === '1' ? 'https://api.sandbox.push.apple.com' : 'https://api.push.apple.com');

  // One thread beside the main one when there is a core for it; more only when asked.
  const apnsThreadsRaw = optional(env, 'HERALD_APNS_THREADS');
  const apnsThreads = apnsThreadsRaw === undefined ? (os.availableParallelism() > 1 ? 1 : 0) : Number(apnsThreadsRaw);
  if (!Number.isInteger(apnsThreads) || apnsThreads < 0 || apnsThreads > 16) {
    throw new ConfigError(`HERALD_APNS_THREADS must be a whole number from 0 to 16, got "${apnsThreadsRaw}"`);
  }

  const fcmAccount = optional(env, 'HERALD_FCM_SERVICE_ACCOUNT');

  const vapidSubject = optional(env, 'HERALD_VAPID_SUBJECT') ?? 'mailto:admin@localhost';
  // RFC 8292 §2.1: the sub claim is a mailto: or an https: URI.
  if (!/^(mailto:[^\s@]+@[^\s@]+|https:\/\/[^\s/]+\S*)$/.test(vapidSubject) || vapidSubject.length > 500) {
    throw new ConfigError(`HERALD_VAPID_SUBJECT must be a mailto: address or an https:// URL, got "${vapidSubject}"`);
  }

  const allowPrivate = optional(env, 'HERALD_WEBPUSH_ALLOW_PRIVATE') ?? '0';
  if (allowPrivate !== '0' && allowPrivate !== '1') {
    throw new ConfigError(`HERALD_WEBPUSH_ALLOW_PRIVATE must be 0 or 1, got "${allowPrivate}"`);
  }

  const bodyLimitRaw = optional(env, 'HERALD_BODY_LIMIT');
  const bodyLimit = bodyLimitRaw ? Number(bodyLimitRaw) : 1024 * 1024;
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1024) {
    throw new ConfigError('HERALD_BODY_LIMIT must be a whole number of bytes, at least 1024');
  }

  const apps = matrixApps(env);
  for (const [appId, provider] of apps) {
    const missing =
      provider === 'apns' && !apnsKeyFile
        ? 'APNs is not configured'
        : provider === 'fcm' && !fcmAccount
          ? 'FCM is not configured'
          : undefined;
    if (missing) throw new ConfigError(`HERALD_MATRIX_APPS pushes ${appId} through ${provider}, but ${missing}`);
  }

  const udpKeepAliveMs = milliseconds(env, 'HERALD_UDP_KEEPALIVE_MS', 25_000);
  const udpEndpointTimeoutMs = milliseconds(env, 'HERALD_UDP_ENDPOINT_TIMEOUT_MS', 3 * udpKeepAliveMs);

  return {
    dataDir,
    databaseUrl,
    redisUrl: optional(env, 'HERALD_REDIS_URL'),
    host: optional(env, 'HERALD_HOST') ?? '127.0.0.1',
    httpPort: port(env, 'HERALD_HTTP_PORT', 9080),
    httpsPort: port(env, 'HERALD_HTTPS_PORT', 9443),
    udpPort: port(env, 'HERALD_UDP_PORT', 9010),
    udpKeepAliveMs,
    udpEndpointTimeoutMs,
    tlsCert,
    tlsKey,
    adminToken: givenToken,
    secretKey,
    publicHost: optional(env, 'HERALD_PUBLIC_HOST'),
    apns:
      apnsKeyFile && apnsKeyId && apnsTeamId && apnsTopic
        ? { keyFile: apnsKeyFile, keyId: apnsKeyId, teamId: apnsTeamId, topic: apnsTopic, url: apnsUrl, threads: apnsThreads }
        : undefined,
    fcm: fcmAccount ? { serviceAccountFile: fcmAccount, url: optional(env, 'HERALD_FCM_URL') ?? 'https://fcm.googleapis.com' } : undefined,
    vapid: { subject: vapidSubject, keyFile: optional(env, 'HERALD_VAPID_KEY_FILE'), allowPrivateEndpoints: allowPrivate === '1' },
    matrixApps: apps,
    caFile: optional(env, 'HERALD_CA_FILE'),
    logLevel: optional(env, 'HERALD_LOG_LEVEL') ?? 'info',
    bodyLimit,
    requestTimeoutMs: milliseconds(env, 'HERALD_REQUEST_TIMEOUT_MS', 60_000),
    corsOrigins: origins(env, 'HERALD_CORS_ORIGINS'),
    rateLimits: rateLimits(env),
    pushHoldMs: seconds(env, 'HERALD_PUSH_HOLD_S', 10, 0, 3600),
    // At least 10 s: live channels write a device's activity at most every 5 s.
    activeWindowMs: seconds(env, 'HERALD_ACTIVE_WINDOW_S', 30, 10, 86_400),
  };
}
