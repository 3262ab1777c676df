import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { Command, CommanderError } from 'commander';
import { loadConfig, ConfigError, unknownVariableWarnings, type Config } from './config.ts';
import { applyEnvFile, type EnvFileResult } from './env-file.ts';
import { configCheck } from './config-check.ts';
import { banner, wantsBanner } from './banner.ts';
import { createUser, listUsers, resetApiKey, resolveUser } from './chat/users.ts';
import { resetAdminToken } from './admin-token.ts';
import { addFriendship, removeFriendship } from './chat/friends.ts';
import { deleteUser } from './chat/user-deletion.ts';
import { checkStation, listDevices, removeDevice } from './chat/devices.ts';
import { feedReader } from './notify/feed.ts';
import { toFrame } from './model/notification.ts';
import { outboxStatus, type OutboxStatus } from './store/deliveries.ts';
import type { Bus } from './cluster/bus.ts';
import { checkNewApiToken, createApiToken, listApiTokens, revokeApiToken, SCOPES } from './chat/api-tokens.ts';
import { HeraldError } from './errors.ts';
import type { Store } from './store/db.ts';

/**
 * The node's composition (Fastify, the channels, the push providers) loads only for the
 * commands that use it: `herald --help` and a usage error answer in a fraction of the time.
 */
const composition = () => import('./app.ts');

async function withStore<T>(work: (store: Store) => Promise<T>): Promise<T> {
  const { openConfiguredStore } = await composition();
  const store = await openConfiguredStore(loadConfig());
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

const print = (value: unknown) => process.stdout.write(JSON.stringify(value) + '\n');

/**
 * Tells the running nodes that devices are gone, so they end those devices' live connections.
 * With HERALD_REDIS_URL that goes through Redis to every node at once; without it the command
 * line reaches no node, and a running node refuses the devices from their next check on (a
 * reconnect, the next Ozeki call after its 10 s memory of stations, the next UDP datagram
 * after its cache of secrets).
 */
async function withDisconnects<T>(config: Config, work: (bus: Pick<Bus, 'publishDisconnect'>) => Promise<T>): Promise<T> {
  if (!config.redisUrl) return work({ publishDisconnect: async () => {} });
  const { RedisBus } = await import('./cluster/redis-bus.ts');
  const bus = await RedisBus.connect(config.redisUrl);
  try {
    return await work(bus);
  } finally {
    await bus.close();
  }
}

/** A command given wrongly (exit code 2), told in one line rather than with the whole help. */
class UsageError extends Error {}

const examples = (...lines: string[]) => `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;

/** Herald's package.json: beside src/ from the sources, two folders up from dist/src/ when built. */
function packageFile(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return file;
    if (path.dirname(dir) === dir) throw new Error('herald: package.json not found above ' + import.meta.dirname);
  }
}

const { version } = JSON.parse(fs.readFileSync(packageFile(), 'utf8')) as { version: string };

const program = new Command('herald')
  .description('Herald, the notification server for chat')
  .version(version, '-V, --version', "print Herald's version")
  .addHelpText('after', examples('herald serve', 'herald user add --email alice@example.org --name Alice', 'herald outbox status'));
// Set before any command is added: subcommands copy these. A usage error is one line on
// standard error (commander's own text after `herald: `) and exit code 2.
program.exitOverride();
program.configureOutput({ outputError: (text, write) => write(`herald: ${text.replace(/^error: /, '').trimEnd()} (see --help)\n`) });

program
  .command('serve')
  .description('run the server (configuration from HERALD_* variables and an optional .env file)')
  .addHelpText('after', examples('herald serve', 'HERALD_HTTP_PORT=8080 HERALD_DATABASE_URL=postgres://herald@db/herald herald serve'))
  .action(async () => {
    for (const warning of unknownVariableWarnings()) process.stderr.write(`herald: warning: ${warning}\n`);
    const { startApp } = await composition();
    const app = await startApp(loadConfig());
    if (wantsBanner(app.parts.config)) {
      process.stderr.write(banner({ config: app.parts.config, endpoints: app.endpoints, tls: app.tls }));
    }
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      app.parts.log.info({ signal }, 'stopping');
      await app.stop();
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  });

/** The .env file read before any command runs (see applyEnvFile). */
let envFile: EnvFileResult = { applied: [] };

program
  .command('config')
  .description('the configuration')
  .command('check')
  .description('print the configuration `herald serve` would use, every problem and warning, without starting; exit code 1 on a problem')
  .addHelpText('after', examples('herald config check', 'HERALD_HTTP_PORT=8080 herald config check'))
  .action(async () => {
    const check = await configCheck(process.env, envFile);
    process.stdout.write(check.text);
    if (check.problems.length > 0) process.exitCode = 1;
  });

const user = program.command('user').description('manage users');
user
  .command('add')
  .description('create a user; prints {"userid","apikey"}, the only time the API key is shown')
  .requiredOption('--email <email>', 'e-mail address (the user id is its MD5)')
  .requiredOption('--name <name>', 'full name')
  .option('--nick <nick>', 'nickname')
  .addHelpText('after', examples('herald user add --email alice@example.org --name "Alice Example" --nick alice'))
  .action(async (options: { email: string; name: string; nick?: string }) => {
    print(await withStore((store) => createUser(store.db, store.secrets, options)));
  });
user
  .command('list')
  .description('list users, one JSON line each (never their API keys)')
  .addHelpText('after', examples('herald user list'))
  .action(async () => {
    for (const row of (await withStore((store) => listUsers(store.db))).users) print(row);
  });
user
  .command('key')
  .description("manage a user's API key")
  .command('reset [user]')
  .description(
    'give a user (e-mail or user id) a new API key; prints {"userid","apikey"}, the only time it is shown. ' +
      "The old key stops working; the user's devices stay logged in",
  )
  .addHelpText('after', examples('herald user key reset alice@example.org', 'herald user key reset 9f9d51bc70ef21ca5c14f307980a29d8'))
  .action(async (emailOrId?: string) => {
    if (emailOrId === undefined || emailOrId.trim() === '') throw new UsageError('name the user: herald user key reset <email-or-id>');
    print(await withStore((store) => resetApiKey(store.db, store.secrets, emailOrId)));
  });

program
  .command('admin-token')
  .description('manage the generated admin token (when HERALD_ADMIN_TOKEN is unset)')
  .command('reset')
  .description(
    'make a new admin token for the data directory; prints {"token","file"}, the only time it is shown. ' +
      'Only its hash is kept; a node takes it at its next start',
  )
  .addHelpText('after', examples('herald admin-token reset', 'HERALD_DATA_DIR=/var/lib/herald herald admin-token reset'))
  .action(() => {
    const config = loadConfig();
    if (config.adminToken !== undefined) {
      throw new UsageError('HERALD_ADMIN_TOKEN is set: that is the admin token; change the variable instead');
    }
    print(resetAdminToken(config.dataDir));
  });

user
  .command('delete <user>')
  .description(
    'delete a user (e-mail or user id) with their devices, feed, outbox, friendships, preferences and conversation memberships; prints what went',
  )
  .addHelpText(
    'after',
    examples('herald user delete alice@example.org', 'herald user delete 0c83f57c786a0b4a39efab23731c7ebc') +
      "\nWith HERALD_REDIS_URL every running node closes the removed devices' connections at once; without it a\n" +
      'running node refuses them from their next check on (a reconnect, the next call, the next UDP datagram).\n',
  )
  .action(async (who: string) => {
    const config = loadConfig();
    print(await withStore((store) => withDisconnects(config, (bus) => deleteUser(store.db, bus, who))));
  });

const friend = program.command('friend').description('manage friendships');
friend
  .command('add <a> <b>')
  .description('make two users (e-mail or user id) friends of each other')
  .addHelpText('after', examples('herald friend add alice@example.org bob@example.org'))
  .action(async (a: string, b: string) => {
    print(
      await withStore(async (store) => {
        const first = await resolveUser(store.db, a);
        const second = await resolveUser(store.db, b);
        await addFriendship(store.db, first.id, second.id);
        return { a: first.id, b: second.id };
      }),
    );
  });
friend
  .command('remove <a> <b>')
  .description('end the friendship of two users (e-mail or user id), both ways')
  .addHelpText('after', examples('herald friend remove alice@example.org bob@example.org'))
  .action(async (a: string, b: string) => {
    print(
      await withStore(async (store) => {
        const first = await resolveUser(store.db, a);
        const second = await resolveUser(store.db, b);
        await removeFriendship(store.db, first.id, second.id);
        return { a: first.id, b: second.id };
      }),
    );
  });

const device = program.command('device').description("manage users' devices");
device
  .command('list <user>')
  .description('list the devices of a user (e-mail or user id), one JSON line each, as GET /v1/users/:id/devices')
  .addHelpText('after', examples('herald device list alice@example.org'))
  .action(async (who: string) => {
    const devices = await withStore(async (store) => listDevices(store.db, (await resolveUser(store.db, who)).id));
    for (const row of devices) print(row);
  });
device
  .command('remove <user> <station>')
  .description('forget a device (its Ozeki-Station) of a user; prints {"userid","station"}')
  .addHelpText(
    'after',
    examples('herald device remove alice@example.org 0123456789abcdef0123456789abcdef') +
      '\nIts live connections end as with herald user delete (at once on every node with HERALD_REDIS_URL).\n',
  )
  .action(async (who: string, stationText: string) => {
    const station = usage(() => checkStation(stationText));
    const config = loadConfig();
    print(
      await withStore(async (store) => {
        const owner = await resolveUser(store.db, who);
        await withDisconnects(config, (bus) => removeDevice(store.db, bus, owner.id, station));
        return { userid: owner.id, station };
      }),
    );
  });

program
  .command('outbox')
  .description('the push outbox')
  .command('status')
  .description(
    'count the outbox rows of each provider (apns, fcm, webpush): pending, retrying, held, delivered, dead, failed, expired, cancelled; one JSON line each, a table on a terminal',
  )
  .option('--json', 'JSON lines even on a terminal')
  .addHelpText('after', examples('herald outbox status', 'herald outbox status --json | jq .retrying'))
  .action(async (options: { json?: boolean }) => {
    const rows = await withStore((store) => outboxStatus(store.db));
    if (process.stdout.isTTY && !options.json) process.stdout.write(outboxTable(rows));
    else for (const row of rows) print(row);
  });

/** The outbox counts as a table for a person at a terminal. */
function outboxTable(rows: OutboxStatus[]): string {
  const columns = ['provider', 'pending', 'retrying', 'held', 'delivered', 'dead', 'failed', 'expired', 'cancelled', 'oldestopen'] as const;
  const cells = rows.map((row) =>
    columns.map((column) =>
      column === 'oldestopen' ? (row.oldestopen === null ? '-' : new Date(row.oldestopen).toISOString()) : String(row[column]),
    ),
  );
  const header = columns.map((column) => (column === 'oldestopen' ? 'oldest open' : column));
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((line) => line[i].length)));
  const line = (values: string[]) => values.map((value, i) => (i === 0 ? value.padEnd(widths[i]) : value.padStart(widths[i]))).join('  ');
  return [line(header), ...cells.map(line)].join('\n') + '\n';
}

program
  .command('feed')
  .description("users' notification feeds")
  .command('tail <user>')
  .description(
    "print a user's (e-mail or user id) notifications as the frames /ws sends, one JSON line each: the newest few, or all after --after",
  )
  .option('--after <seq>', 'print every notification after this sequence number (0: the whole feed)')
  .option('-n, --lines <count>', 'without --after: how many of the newest sequence numbers to print', '10')
  .option('-f, --follow', 'keep printing new notifications as they are written (polls the database every 500 ms) until SIGINT or SIGTERM')
  .addHelpText('after', examples('herald feed tail alice@example.org', 'herald feed tail alice@example.org --after 120 --follow'))
  .action(async (who: string, options: { after?: string; lines: string; follow?: boolean }) => {
    const after = options.after === undefined ? undefined : wholeNumber('--after', options.after);
    const lines = wholeNumber('--lines', options.lines);
    await tailFeed(loadConfig(), who, after, lines, options.follow === true);
  });

/** How often `feed tail --follow` asks the database: the command line has no bus to listen to. */
const FEED_POLL_MS = 500;
/** Notifications read from the feed at a time. */
const FEED_PAGE = 1000;

async function tailFeed(config: Config, who: string, after: number | undefined, lines: number, follow: boolean): Promise<void> {
  const { openConfiguredStore } = await composition();
  const store = await openConfiguredStore(config);
  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopped = true;
    wake?.();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    const userId = (await resolveUser(store.db, who)).id;
    const feed = feedReader(store.db);
    let seq = after ?? Math.max(0, (await feed.head(userId)).lastSeq - lines);
    while (!stopped) {
      const page = await feed.read(userId, seq, FEED_PAGE);
      for (const notification of page) print(toFrame(notification));
      if (page.length > 0) seq = page[page.length - 1].seq;
      if (page.length === FEED_PAGE) continue;
      if (!follow) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, FEED_POLL_MS);
      });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await store.close();
  }
}

/** A value the command checks that was given wrongly: a usage error (exit code 2). */
function usage<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function wholeNumber(option: string, text: string): number {
  if (!/^\d{1,15}$/.test(text.trim())) throw new UsageError(`${option} must be a whole number, 0 or more, not ${JSON.stringify(text)}`);
  return Number(text);
}

const token = program.command('token').description('manage the scoped API tokens of the native API (/v1)');
token
  .command('create')
  .description('make a token; prints {"id","name","scopes","token","created","expires"}, the only time the token is shown')
  .option('--name <name>', 'who holds the token, e.g. billing-backend (1 to 100 characters)')
  .option('--scope <scope>', `a scope to grant, repeatable: ${SCOPES.join(', ')}`, (scope: string, all: string[]) => [...all, scope], [])
  .option('--expires-in <duration>', 'how long until it stops working: seconds, or a number with s, m, h or d (90d); default never')
  .addHelpText(
    'after',
    examples(
      'herald token create --name billing-backend --scope notifications:send',
      'herald token create --name directory --scope users:read --scope users:write --expires-in 90d',
    ),
  )
  .action(async (options: { name?: string; scope: string[]; expiresIn?: string }) => {
    if (options.name === undefined) throw new UsageError('give the token a --name');
    if (options.scope.length === 0) throw new UsageError(`give at least one --scope: ${SCOPES.join(', ')}`);
    const request = { name: options.name, scopes: options.scope, expiresIn: durationSeconds(options.expiresIn) };
    try {
      checkNewApiToken(request);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    print(await withStore((store) => createApiToken(store.db, request)));
  });
token
  .command('list')
  .description('list the tokens, revoked ones too, one JSON line each (never the tokens themselves)')
  .addHelpText('after', examples('herald token list'))
  .action(async () => {
    for (const row of await withStore((store) => listApiTokens(store.db))) print(row);
  });
token
  .command('revoke <id>')
  .description('revoke a token: every node refuses it from now on; prints the token as listed')
  .addHelpText('after', examples('herald token revoke 3f0c9a2e6b1d4c5f8a7e6d5c4b3a2910'))
  .action(async (id: string) => {
    print(await withStore((store) => revokeApiToken(store.db, id)));
  });

/** `--expires-in`: whole seconds, or a number of seconds, minutes, hours or days (`90d`). */
function durationSeconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) throw new UsageError(`--expires-in must be seconds or a number with s, m, h or d (90d), not ${JSON.stringify(text)}`);
  const seconds = Number(match[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  if (seconds < 1) throw new UsageError('--expires-in must be at least one second: an expiry in the future');
  return seconds;
}

program
  .command('push')
  .description('mobile push tools')
  .command('test <station>')
  .description("send a test push to a device (its Ozeki-Station id) and print the provider's answer")
  .addHelpText('after', examples('herald push test 0123456789abcdef0123456789abcdef'))
  .action(async (station: string) => {
    const config = loadConfig();
    const { testPush } = await composition();
    const result = await withStore((store) => testPush(config, store, station));
    print(result);
    if (result.outcome.kind !== 'delivered') process.exitCode = 2;
  });

program
  .command('listen')
  .description('a demo desktop client: prints incoming notifications as JSON lines')
  .option('--udp', 'receive over UDP (the only live channel this command speaks)')
  .requiredOption('--station <station>', "this client's station id, 32 hex characters")
  .option('--secret <hex>', "the station's udpsecret (from chatlogin), if already known")
  .option('--apikey <apikey>', 'log in over HTTP(S) first and take the secret and UDP endpoint from the answer')
  .option('--server <url>', 'base URL of the Ozeki API for --apikey (default: http://127.0.0.1 at HERALD_HTTP_PORT)')
  .option('--endpoint <url>', 'UDP listener, udp://host:port (default: from login, else 127.0.0.1 and HERALD_UDP_PORT)')
  .option('--after <seq>', 'resume: first print every notification after this sequence')
  .addHelpText(
    'after',
    examples(
      'herald listen --udp --station 0123456789abcdef0123456789abcdef --apikey 5f2b…',
      'herald listen --udp --station 0123456789abcdef0123456789abcdef --secret 9a41… --after 120',
    ),
  )
  .action(async (options: ListenOptions) => {
    if (!options.udp) throw new UsageError('say which channel to listen on: --udp');
    if (!/^[0-9a-fA-F]{32}$/.test(options.station)) throw new UsageError('--station must be 32 hexadecimal characters');
    await listenUdp(options);
  });

interface ListenOptions {
  udp?: boolean;
  station: string;
  secret?: string;
  apikey?: string;
  server?: string;
  endpoint?: string;
  after?: string;
}

async function listenUdp(options: ListenOptions): Promise<void> {
  const { UdpReceiver } = await import('../client/udp-receiver.ts');
  const station = options.station.toLowerCase();
  let secret = options.secret;
  let endpoint = options.endpoint;
  const after = options.after === undefined ? undefined : wholeNumber('--after', options.after);
  if (!secret && !options.apikey) throw new UsageError('give --secret, or --apikey to log in and get it');
  if (options.apikey) {
    const { OzekiClient } = await import('../client/ozeki.ts');
    const server = options.server ?? `http://127.0.0.1:${loadConfig().httpPort}`;
    const url = usage(() => new URL(server));
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new UsageError(`--server must be an http:// or https:// URL, not ${server}`);
    const client = new OzekiClient(server.replace(/\/+$/, ''), station, { timeoutMs: LOGIN_TIMEOUT_MS });
    const login = await client.login(options.apikey, 'windows').catch((error: unknown) => {
      const reason = networkFailure(error);
      throw new Failure(reason ? `cannot reach ${server}: ${reason}` : `the login at ${server} failed: ${(error as Error).message}`);
    });
    secret ??= login.udpsecret as string;
    endpoint ??= (login.listeners as { udp?: string } | undefined)?.udp;
  }
  if (!secret) throw new Failure('the login answered without a udpsecret');
  endpoint ??= `udp://127.0.0.1:${loadConfig().udpPort}`;
  const where = endpoint;
  const receiver = usage(() => new UdpReceiver({ endpoint: where, station, secret, lastSeq: after }));
  receiver.on('notification', print);
  // The server binds this socket only once it has echoed a cookie sent to it; the receiver
  // does that by itself, this line only shows it happen (at start and after an address change).
  receiver.on('challenged', () => process.stderr.write(`proving this address to ${endpoint}\n`));
  receiver.on('registered', (welcome: { new?: boolean }) => {
    if (welcome.new) process.stderr.write(`registered at ${endpoint}\n`);
  });
  const stop = async () => {
    await receiver.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  // The receiver only times out by itself; a socket error (a host that does not resolve) ends the wait at once.
  const socketFailed = new Promise<never>((_resolve, reject) => receiver.once('socketError', reject));
  try {
    await Promise.race([receiver.start(), socketFailed]);
  } catch (error) {
    await receiver.close();
    throw new Failure(`cannot reach ${endpoint}: ${networkFailure(error) ?? 'no answer (timed out)'}`);
  }
}

/** How long `listen --apikey` waits for the login's answer. */
const LOGIN_TIMEOUT_MS = 10_000;

/** A command that failed for a reason outside it, such as a server that did not answer (exit code 1, one line). */
class Failure extends Error {}

/** Network failures in a few words (`connection refused`), or undefined for any other error. */
function networkFailure(error: unknown): string | undefined {
  const err = error as { name?: string; code?: string; cause?: { code?: string; name?: string } } | undefined;
  if (err?.name === 'TimeoutError' || err?.cause?.name === 'ConnectTimeoutError') return 'no answer (timed out)';
  const code = err?.cause?.code ?? err?.code;
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'no such host',
    EAI_AGAIN: 'no such host (name lookup failed)',
    ETIMEDOUT: 'no answer (timed out)',
    UND_ERR_CONNECT_TIMEOUT: 'no answer (timed out)',
    UND_ERR_HEADERS_TIMEOUT: 'no answer (timed out)',
    ECONNRESET: 'connection reset',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    UND_ERR_SOCKET: 'connection closed',
    CERT_HAS_EXPIRED: 'its TLS certificate has expired',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is self-signed and not trusted',
    SELF_SIGNED_CERT_IN_CHAIN: 'its TLS certificate is not trusted',
  };
  if (code && words[code]) return words[code];
  return code && /^E[A-Z]+$/.test(code) ? code : undefined;
}

try {
  envFile = applyEnvFile(process.env);
  await program.parseAsync(process.argv);
} catch (error) {
  // --help and --version end here with code 0; every other commander error is a usage error.
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
  if (error instanceof UsageError) {
    process.stderr.write(`herald: ${error.message}\n`);
    process.exit(2);
  }
  // One line per problem; the whole error, with its stack and cause, only at debug level.
  const problems = error instanceof ConfigError ? error.problems : [error instanceof Error ? error.message : String(error)];
  for (const problem of problems) process.stderr.write(`herald: ${problem}\n`);
  const level = process.env.HERALD_LOG_LEVEL;
  if (level === 'debug' || level === 'trace') process.stderr.write(`${inspect(error)}\n`);
  else if (!(error instanceof HeraldError || error instanceof ConfigError || error instanceof Failure)) {
    process.stderr.write('herald: (HERALD_LOG_LEVEL=debug shows the whole error)\n');
  }
  process.exit(1);
}
