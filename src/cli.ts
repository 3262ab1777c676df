import { Command, CommanderError } from 'commander';
import { loadConfig, ConfigError } from './config.ts';
import { createUser, listUsers, resolveUser } from './chat/users.ts';
import { addFriendship } from './chat/friends.ts';
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

/** A command given wrongly (exit code 2), told in one line rather than with the whole help. */
class UsageError extends Error {}

const examples = (...lines: string[]) => `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;

const program = new Command('herald').description('Herald, the notification server for chat').showHelpAfterError();
program.exitOverride();

program
  .command('serve')
  .description('run the server (configuration from HERALD_* variables)')
  .action(async () => {
    const { startApp } = await composition();
    const app = await startApp(loadConfig());
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

const user = program.command('user').description('manage users');
user
  .command('add')
  .description('create a user; prints {"userid","apikey"}')
  .requiredOption('--email <email>', 'e-mail address (the user id is its MD5)')
  .requiredOption('--name <name>', 'full name')
  .option('--nick <nick>', 'nickname')
  .action(async (options: { email: string; name: string; nick?: string }) => {
    print(await withStore((store) => createUser(store.db, options)));
  });
user
  .command('list')
  .description('list users, one JSON line each')
  .action(async () => {
    for (const row of await withStore((store) => listUsers(store.db))) print(row);
  });

program
  .command('friend')
  .description('manage friendships')
  .command('add <a> <b>')
  .description('make two users (e-mail or user id) friends of each other')
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
  .option('--server <url>', 'base URL of the Ozeki API for --apikey', 'http://127.0.0.1:9080')
  .option('--endpoint <url>', 'UDP listener, udp://host:port (default: from login, else 127.0.0.1 and HERALD_UDP_PORT)')
  .option('--after <seq>', 'resume: first print every notification after this sequence')
  .action(async (options: ListenOptions) => {
    if (!options.udp) throw new HeraldError(400, 'say which channel to listen on: --udp');
    await listenUdp(options);
  });

interface ListenOptions {
  udp?: boolean;
  station: string;
  secret?: string;
  apikey?: string;
  server: string;
  endpoint?: string;
  after?: string;
}

async function listenUdp(options: ListenOptions): Promise<void> {
  const { UdpReceiver } = await import('../client/udp-receiver.ts');
  const station = options.station.toLowerCase();
  let secret = options.secret;
  let endpoint = options.endpoint;
  if (options.apikey) {
    const { OzekiClient } = await import('../client/ozeki.ts');
    const login = await new OzekiClient(options.server, station).login(options.apikey, 'windows');
    secret ??= login.udpsecret as string;
    endpoint ??= (login.listeners as { udp?: string } | undefined)?.udp;
  }
  if (!secret) throw new HeraldError(400, 'give --secret, or --apikey to log in and get it');
  endpoint ??= `udp://127.0.0.1:${loadConfig().udpPort}`;
  const after = options.after === undefined ? undefined : Number(options.after);
  if (after !== undefined && (!Number.isSafeInteger(after) || after < 0)) {
    throw new HeraldError(400, '--after is a sequence number');
  }
  const receiver = new UdpReceiver({ endpoint, station, secret, lastSeq: after });
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
  await receiver.start();
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  if (error instanceof UsageError) {
    process.stderr.write(`herald: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof HeraldError || error instanceof ConfigError) {
    process.stderr.write(`herald: ${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
