import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makePrivateDir } from './files.ts';

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
    /**
     * Worker threads that send the outbox's pushes, each with a connection and an access
     * token of its own (HERALD_FCM_THREADS); 0 sends from the main thread.
     */
    threads: number;
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
  /** HERALD_BANNER: 1 prints the start banner, 0 never; unset, only on a terminal. */
  banner?: boolean;
}

/**
 * A configuration Herald cannot start with, told in one line that names the variable.
 * `problems` holds every problem found (the message is the first), for `herald config check`
 * and for a start that lists them all.
 */
export class ConfigError extends Error {
  readonly problems: string[];

  constructor(message: string, options?: { problems?: string[]; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.problems = options?.problems ?? [message];
  }
}

/** What one read of the environment found: the configuration, or every problem with it. */
export interface ConfigReport {
  /** Undefined when there are problems. */
  config?: Config;
  problems: string[];
  /** Every variable read, in the order read, with the value in effect. */
  variables: ConfigVariable[];
}

export interface ConfigVariable {
  name: string;
  /** The value as set (unset and empty are the same). */
  value?: string;
  /** What is used when it is unset, in words (`9080`, `generated, kept in data/admin-token`). */
  fallback?: string;
}

/**
 * Reads HERALD_* variables for one configuration: it keeps every problem rather than stopping
 * at the first, and remembers each variable it read, so the list of known names and
 * `herald config check` come from the same reads as the configuration itself.
 */
class Reader {
  readonly problems: string[] = [];
  readonly variables = new Map<string, ConfigVariable>();

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  /** The value of a variable; unset and empty are the same. `fallback` says what applies then. */
  optional(name: string, fallback?: string): string | undefined {
    const raw = this.env[name];
    const value = raw === undefined || raw === '' ? undefined : raw;
    this.variables.set(name, { name, value, fallback });
    return value;
  }

  /** Says what applies when a variable read earlier is unset, once that is known. */
  fallback(name: string, fallback: string): void {
    const variable = this.variables.get(name);
    if (variable) variable.fallback = fallback;
  }

  problem(message: string): void {
    this.problems.push(message);
  }
}

export const MATRIX_PROVIDERS = ['apns', 'fcm', 'webpush'] as const;
export type MatrixProvider = (typeof MATRIX_PROVIDERS)[number];

/** A Matrix app id (reverse DNS by convention; the pusher API allows at most 64 characters). */
const MATRIX_APP_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** HERALD_MATRIX_APPS: `app_id=provider` pairs separated by commas. */
function matrixApps(r: Reader): Map<string, MatrixProvider> {
  const name = 'HERALD_MATRIX_APPS';
  const apps = new Map<string, MatrixProvider>();
  const raw = r.optional(name, 'gateway off');
  if (raw === undefined) return apps;
  for (const entry of raw.split(',')) {
    const pair = entry.trim();
    if (pair === '') continue;
    const [appId, provider, ...rest] = pair.split('=').map((part) => part.trim());
    if (provider === undefined || rest.length > 0 || !MATRIX_APP_ID.test(appId)) {
      r.problem(`${name} must be a comma-separated list of app_id=provider (e.g. im.example.ios=apns), got "${pair}"`);
    } else if (!(MATRIX_PROVIDERS as readonly string[]).includes(provider)) {
      r.problem(`${name}: the provider of ${appId} must be one of ${MATRIX_PROVIDERS.join(', ')}, got "${provider}"`);
    } else if (apps.has(appId)) {
      r.problem(`${name} names ${appId} twice`);
    } else {
      apps.set(appId, provider as MatrixProvider);
    }
  }
  return apps;
}

function port(r: Reader, name: string, fallback: number): number {
  const raw = r.optional(name, String(fallback));
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    r.problem(`${name} must be a port number between 0 and 65535, got "${raw}"`);
    return fallback;
  }
  return value;
}

/** A duration in milliseconds (HERALD_UDP_*_MS); tests shorten them to run in a second. */
function milliseconds(r: Reader, name: string, fallback: number, fallbackText = String(fallback)): number {
  const raw = r.optional(name, fallbackText);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 50 || value > 3_600_000) {
    r.problem(`${name} must be a whole number of milliseconds between 50 and 3600000, got "${raw}"`);
    return fallback;
  }
  return value;
}

/** A whole number of seconds from `min` to `max`, in milliseconds. */
function seconds(r: Reader, name: string, fallback: number, min: number, max: number): number {
  const raw = r.optional(name, String(fallback));
  if (raw === undefined) return fallback * 1000;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    r.problem(`${name} must be a whole number of seconds from ${min} to ${max}, got "${raw}"`);
    return fallback * 1000;
  }
  return value * 1000;
}

/**
 * The worker threads that send a provider's outbox pushes (HERALD_APNS_THREADS,
 * HERALD_FCM_THREADS): 0 to 16, by default one beside the main thread when there is a core
 * for it; more only when asked.
 */
function pushThreads(r: Reader, name: string): number {
  const fallback = os.availableParallelism() > 1 ? 1 : 0;
  const raw = r.optional(name, String(fallback));
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 16) {
    r.problem(`${name} must be a whole number from 0 to 16, got "${raw}"`);
  }
  return value;
}

/** A switch: `0` or `1`, nothing else (`true`, `yes` or `on` would be guesses). */
function flag(r: Reader, name: string, fallback: boolean): boolean;
function flag(r: Reader, name: string, fallback: undefined, fallbackText: string): boolean | undefined;
function flag(r: Reader, name: string, fallback: boolean | undefined, fallbackText?: string): boolean | undefined {
  const raw = r.optional(name, fallbackText ?? (fallback ? '1' : '0'));
  if (raw === undefined) return fallback;
  if (raw !== '0' && raw !== '1') {
    r.problem(`${name} must be 0 or 1, got "${raw}"`);
    return fallback;
  }
  return raw === '1';
}

/** `https://chat.example.org, http://localhost:8080` or `*`, each checked to be an origin and nothing more. */
function origins(r: Reader, name: string): string[] {
  const entries = (r.optional(name, 'no CORS headers') ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const result: string[] = [];
  for (const entry of entries) {
    if (entry === '*') {
      result.push(entry);
      continue;
    }
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    // A browser sends its Origin without path or trailing slash, lower-cased: compare it so.
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== entry.toLowerCase().replace(/\/$/, '')) {
      r.problem(`${name} must be a comma-separated list of origins such as https://chat.example.org (or *), got "${entry}"`);
    } else {
      result.push(url.origin);
    }
  }
  return result;
}

/** pino's levels, quietest last. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function logLevel(r: Reader): string {
  const raw = r.optional('HERALD_LOG_LEVEL', 'info');
  if (raw === undefined) return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) {
    r.problem(`HERALD_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
    return 'info';
  }
  return raw;
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

function rate(r: Reader, kind: RateLimitKind): Rate | undefined {
  const name = `HERALD_LIMIT_${kind.toUpperCase()}`;
  const raw = (r.optional(name, RATE_LIMIT_DEFAULTS[kind]) ?? RATE_LIMIT_DEFAULTS[kind]).trim();
  if (raw === 'off') return undefined;
  const match = /^(\d{1,9})\/(\d{0,6})([smh])$/.exec(raw);
  const burst = match ? Number(match[1]) : 0;
  const seconds = match ? Number(match[2] || '1') * PERIOD_UNITS[match[3]] : 0;
  if (burst < 1 || seconds < 1) {
    r.problem(`${name} must be <count>/<period> such as 100/10s, 60/1m or 1000/s, or off; got "${raw}"`);
    return undefined;
  }
  return { burst, perSecond: burst / seconds };
}

function rateLimits(r: Reader): RateLimitsConfig {
  const enabled = flag(r, 'HERALD_RATE_LIMITS', true);
  const rates = Object.fromEntries(RATE_LIMIT_KINDS.map((kind) => [kind, rate(r, kind)])) as RateLimitsConfig['rates'];
  const costRaw = r.optional('HERALD_LIMIT_LOGIN_FAILURE_COST', '20') ?? '20';
  const loginFailureCost = Number(costRaw);
  if (!/^\d{1,6}$/.test(costRaw) || loginFailureCost < 1) {
    r.problem(`HERALD_LIMIT_LOGIN_FAILURE_COST must be a whole number, at least 1, got "${costRaw}"`);
  }
  return { enabled, rates, loginFailureCost };
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

/**
 * Switches that turn a fast path off (README, "Switches for the fast paths"). The parts that
 * obey them read them where they are used; they are checked here so that a typo or a value
 * other than 0 or 1 is told at start.
 */
export const FAST_PATH_SWITCHES = [
  'HERALD_NO_CORK',
  'HERALD_NO_FRAME_CACHE',
  'HERALD_NO_WHOLE_FRAMES',
  'HERALD_NO_PUSH_PAYLOAD_CACHE',
  'HERALD_NO_PREFILLED_STREAM_OPTIONS',
  'HERALD_NO_LEAN_BIND',
  'HERALD_NO_LARGE_YOUNG_GENERATION',
  'HERALD_NO_VAPID_TOKEN_CACHE',
  'HERALD_NO_WEBPUSH_HTTP2',
  'HERALD_NO_LEASED_PUSH_WRITES',
] as const;

/** Read by the tests, the CLI's test helpers and the .env loader, not by a node's configuration. */
const OTHER_NAMES = [
  'HERALD_TEST_DATABASE_URL',
  'HERALD_TEST_REDIS_URL',
  'HERALD_TEST_CHROMIUM',
  'HERALD_TEST_SCREENSHOTS',
  'HERALD_BIN',
  'HERALD_ENV_FILE',
  'HERALD_TEST_BUS_DROP',
];

function read(r: Reader): Config {
  const dataDir = path.resolve(r.optional('HERALD_DATA_DIR', path.resolve('./data')) ?? './data');
  const databaseUrl = r.optional('HERALD_DATABASE_URL', 'SQLite in the data dir');
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    r.problem('HERALD_DATABASE_URL must be a postgres:// URL (leave it unset for SQLite)');
  }
  const redisUrl = r.optional('HERALD_REDIS_URL', 'one node, in-process bus');
  const host = r.optional('HERALD_HOST', '127.0.0.1') ?? '127.0.0.1';
  const publicHost = r.optional('HERALD_PUBLIC_HOST', 'the bind address');
  const httpPort = port(r, 'HERALD_HTTP_PORT', 9080);
  const httpsPort = port(r, 'HERALD_HTTPS_PORT', 9443);
  const udpPort = port(r, 'HERALD_UDP_PORT', 9010);
  if (httpPort !== 0 && httpPort === httpsPort) {
    r.problem(`HERALD_HTTP_PORT and HERALD_HTTPS_PORT are both ${httpPort}: give each its own port`);
  }
  const udpKeepAliveMs = milliseconds(r, 'HERALD_UDP_KEEPALIVE_MS', 25_000);
  const udpEndpointTimeoutMs = milliseconds(
    r,
    'HERALD_UDP_ENDPOINT_TIMEOUT_MS',
    3 * udpKeepAliveMs,
    `${3 * udpKeepAliveMs}, 3 keep-alives`,
  );

  const selfSigned = `self-signed, ${path.join(dataDir, 'tls-cert.pem')}`;
  const tlsCert = r.optional('HERALD_TLS_CERT', selfSigned);
  const tlsKey = r.optional('HERALD_TLS_KEY', selfSigned.replace('tls-cert.pem', 'tls-key.pem'));
  if (Boolean(tlsCert) !== Boolean(tlsKey)) {
    r.problem('HERALD_TLS_CERT and HERALD_TLS_KEY must be set together');
  }
  const givenToken = r.optional('HERALD_ADMIN_TOKEN', `generated once, its hash kept in ${path.join(dataDir, 'admin-token.sha256')}`);
  const secretKeyText = r.optional('HERALD_SECRET_KEY', `made once, ${path.join(dataDir, 'secret.key')}`);
  const secretKey = secretKeyText === undefined ? undefined : parseDataKey(secretKeyText);
  if (secretKeyText !== undefined && !secretKey) {
    r.problem('HERALD_SECRET_KEY must be 32 bytes as 64 hex digits or as base64 (openssl rand -base64 32)');
  }

  const apnsKeyFile = r.optional('HERALD_APNS_KEY_FILE', 'APNs off');
  const apnsKeyId = r.optional('HERALD_APNS_KEY_ID');
  const apnsTeamId = r.optional('HERALD_APNS_TEAM_ID');
  const apnsTopic = r.optional('HERALD_APNS_TOPIC');
  const apnsParts = [apnsKeyFile, apnsKeyId, apnsTeamId, apnsTopic];
  if (apnsParts.some(Boolean) && !apnsParts.every(Boolean)) {
    r.problem('APNs needs all of HERALD_APNS_KEY_FILE, HERALD_APNS_KEY_ID, HERALD_APNS_TEAM_ID and HERALD_APNS_TOPIC');
  }
  const sandbox = flag(r, 'HERALD_APNS_SANDBOX', false);
  const apnsDefaultUrl = sandbox ? 'https://api.sandbox.push.apple.com' : 'https://api.push.apple.com';
  const apnsUrl = r.optional('HERALD_APNS_URL', apnsDefaultUrl) ?? apnsDefaultUrl;

  const apnsThreads = pushThreads(r, 'HERALD_APNS_THREADS');

  const fcmAccount = r.optional('HERALD_FCM_SERVICE_ACCOUNT', 'FCM off');
  const fcmUrl = r.optional('HERALD_FCM_URL', 'https://fcm.googleapis.com') ?? 'https://fcm.googleapis.com';
  const fcmThreads = pushThreads(r, 'HERALD_FCM_THREADS');
  const caFile = r.optional('HERALD_CA_FILE', 'the system CAs only');

  const vapidSubject = r.optional('HERALD_VAPID_SUBJECT', 'mailto:admin@localhost') ?? 'mailto:admin@localhost';
  // RFC 8292 §2.1: the sub claim is a mailto: or an https: URI.
  if (!/^(mailto:[^\s@]+@[^\s@]+|https:\/\/[^\s/]+\S*)$/.test(vapidSubject) || vapidSubject.length > 500) {
    r.problem(`HERALD_VAPID_SUBJECT must be a mailto: address or an https:// URL, got "${vapidSubject}"`);
  }
  const vapidKeyFile = r.optional('HERALD_VAPID_KEY_FILE', `made once, ${path.join(dataDir, 'vapid.json')}`);
  const allowPrivateEndpoints = flag(r, 'HERALD_WEBPUSH_ALLOW_PRIVATE', false);

  const apps = matrixApps(r);
  for (const [appId, provider] of apps) {
    const missing =
      provider === 'apns' && !apnsKeyFile
        ? 'APNs is not configured'
        : provider === 'fcm' && !fcmAccount
          ? 'FCM is not configured'
          : undefined;
    if (missing) r.problem(`HERALD_MATRIX_APPS pushes ${appId} through ${provider}, but ${missing}`);
  }

  const bodyLimitRaw = r.optional('HERALD_BODY_LIMIT', String(1024 * 1024));
  const bodyLimit = bodyLimitRaw ? Number(bodyLimitRaw) : 1024 * 1024;
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1024) {
    r.problem('HERALD_BODY_LIMIT must be a whole number of bytes, at least 1024');
  }
  const requestTimeoutMs = milliseconds(r, 'HERALD_REQUEST_TIMEOUT_MS', 60_000);
  const corsOrigins = origins(r, 'HERALD_CORS_ORIGINS');
  const limits = rateLimits(r);
  const pushHoldMs = seconds(r, 'HERALD_PUSH_HOLD_S', 10, 0, 3600);
  // At least 10 s: live channels write a device's activity at most every 5 s.
  const activeWindowMs = seconds(r, 'HERALD_ACTIVE_WINDOW_S', 30, 10, 86_400);
  const level = logLevel(r);
  const banner = flag(r, 'HERALD_BANNER', undefined, 'on a terminal');
  for (const name of FAST_PATH_SWITCHES) flag(r, name, false);

  return {
    dataDir,
    databaseUrl,
    redisUrl,
    host,
    httpPort,
    httpsPort,
    udpPort,
    udpKeepAliveMs,
    udpEndpointTimeoutMs,
    tlsCert,
    tlsKey,
    adminToken: givenToken,
    secretKey,
    publicHost,
    apns:
      apnsKeyFile && apnsKeyId && apnsTeamId && apnsTopic
        ? { keyFile: apnsKeyFile, keyId: apnsKeyId, teamId: apnsTeamId, topic: apnsTopic, url: apnsUrl, threads: apnsThreads }
        : undefined,
    fcm: fcmAccount ? { serviceAccountFile: fcmAccount, url: fcmUrl, threads: fcmThreads } : undefined,
    vapid: { subject: vapidSubject, keyFile: vapidKeyFile, allowPrivateEndpoints },
    matrixApps: apps,
    caFile,
    logLevel: level,
    bodyLimit,
    requestTimeoutMs,
    corsOrigins,
    rateLimits: limits,
    pushHoldMs,
    activeWindowMs,
    banner,
  };
}

/** Reads the whole configuration and reports every problem with it; never throws. */
export function checkConfig(env: NodeJS.ProcessEnv = process.env): ConfigReport {
  const r = new Reader(env);
  const config = read(r);
  return { config: r.problems.length === 0 ? config : undefined, problems: r.problems, variables: [...r.variables.values()] };
}

/** The configuration of a node; a bad value throws a ConfigError naming its variable (and lists every other). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const report = checkConfig(env);
  if (!report.config) throw new ConfigError(report.problems[0], { problems: report.problems });
  return report.config;
}

/** Every HERALD_* name Herald reads: what the configuration reads, plus the tests' and tools' own. */
export const KNOWN_NAMES: ReadonlySet<string> = new Set([...checkConfig({}).variables.map((v) => v.name), ...OTHER_NAMES]);

/**
 * HERALD_* variables Herald does not read, each with a warning (a typo would otherwise leave
 * the default in force without a word).
 */
export function unknownVariableWarnings(env: NodeJS.ProcessEnv = process.env): string[] {
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('HERALD_') || KNOWN_NAMES.has(name)) continue;
    const likely = closestName(name);
    warnings.push(`${name} is not a Herald variable and is ignored${likely ? ` (did you mean ${likely}?)` : ''}`);
  }
  return warnings;
}

/** The known name a typo most likely meant: at most 3 edits away. */
function closestName(name: string): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  for (const known of KNOWN_NAMES) {
    const distance = editDistance(name, known);
    if (distance < bestDistance) [best, bestDistance] = [known, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}

/*
 * What a start needs of the file system: checked before anything is opened, so that each
 * problem is told in one line naming its variable rather than as a stack trace from deep inside.
 */

/**
 * The data directory exists (or is made) and Herald may write in it. With `make: false`
 * nothing is made: a missing directory is fine when the closest existing one above it can
 * hold it (`herald config check`).
 */
export function checkDataDir(dataDir: string, { make = true } = {}): string | undefined {
  let existing = dataDir;
  if (make) {
    try {
      makePrivateDir(dataDir);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTDIR') return `HERALD_DATA_DIR ${dataDir} is not a directory`;
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')
        return `HERALD_DATA_DIR ${dataDir} cannot be made: not writable by this user`;
      return `HERALD_DATA_DIR ${dataDir} cannot be made (${code ?? (error as Error).message})`;
    }
  } else {
    while (!fs.existsSync(existing) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  }
  if (!fs.statSync(existing).isDirectory()) return `HERALD_DATA_DIR ${dataDir} is not a directory`;
  try {
    fs.accessSync(existing, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    return existing === dataDir
      ? `HERALD_DATA_DIR ${dataDir} is not writable by this user`
      : `HERALD_DATA_DIR ${dataDir} cannot be made: ${existing} is not writable by this user`;
  }
  return undefined;
}

/** Files named by variables that must exist at start (HERALD_VAPID_KEY_FILE is made when missing). */
export function checkNamedFiles(config: Config): string[] {
  const files: [string, string | undefined][] = [
    ['HERALD_TLS_CERT', config.tlsCert],
    ['HERALD_TLS_KEY', config.tlsKey],
    ['HERALD_APNS_KEY_FILE', config.apns?.keyFile],
    ['HERALD_FCM_SERVICE_ACCOUNT', config.fcm?.serviceAccountFile],
    ['HERALD_CA_FILE', config.caFile],
  ];
  const problems: string[] = [];
  for (const [name, file] of files) {
    if (file === undefined) continue;
    try {
      fs.accessSync(file, fs.constants.R_OK);
      if (!fs.statSync(file).isFile()) problems.push(`${name} ${file} is not a file`);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      problems.push(code === 'ENOENT' ? `${name} ${file} does not exist` : `${name} ${file} cannot be read (${code})`);
    }
  }
  return problems;
}
