import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child } from './ipc.ts';
import { createBenchDatabase, type BenchDatabase } from './database.ts';

export const BENCH_ADMIN_TOKEN = 'bench-admin-token';

export interface HeraldEndpoints {
  http: string;
  https: string;
  ws: string;
  wss: string;
  udp: string;
}

export interface SeededUser {
  userid: string;
  apikey: string;
  stations: string[];
}

/** Node flags for every Herald process of the bench, to try a V8 setting: BENCH_NODE_FLAGS, none when unset. */
export function heraldNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
}

/** A Herald node in its own process (bench/servers/herald.ts), on loopback with ephemeral ports. */
export class HeraldProcess {
  readonly child: Child;
  endpoints!: HeraldEndpoints;
  /** The PostgreSQL database of its own this node runs on (dropped at stop); SQLite when unset. */
  database?: BenchDatabase;

  private constructor(
    readonly dataDir: string,
    private readonly ownsDataDir: boolean,
    env: Record<string, string>,
    nodeFlags: string[],
  ) {
    this.child = new Child('herald', 'servers/herald.ts', {
      nodeFlags: ['--expose-gc', ...heraldNodeFlags(), ...nodeFlags],
      env: {
        HERALD_DATA_DIR: dataDir,
        HERALD_HOST: '127.0.0.1',
        HERALD_HTTP_PORT: '0',
        HERALD_HTTPS_PORT: '0',
        HERALD_UDP_PORT: '0',
        HERALD_ADMIN_TOKEN: BENCH_ADMIN_TOKEN,
        // One data key for every node, as a cluster shares HERALD_SECRET_KEY.
        HERALD_SECRET_KEY: 'b'.repeat(64),
        HERALD_LOG_LEVEL: 'error',
        ...env,
      },
    });
  }

  /**
   * With `databaseUrl` (a PostgreSQL server), the node gets a fresh database of its own on
   * that server, so runs never meet each other's users; otherwise SQLite in its data dir.
   */
  static async start(options: { dataDir?: string; env?: Record<string, string>; nodeFlags?: string[]; databaseUrl?: string } = {}) {
    const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'herald-bench-'));
    const database = options.databaseUrl ? await createBenchDatabase(options.databaseUrl) : undefined;
    const env = { ...options.env, ...(database ? { HERALD_DATABASE_URL: database.url } : {}) };
    const herald = new HeraldProcess(dataDir, !options.dataDir, env, options.nodeFlags ?? []);
    herald.database = database;
    try {
      herald.endpoints = await herald.child.request<HeraldEndpoints>('start', {}, 60_000);
    } catch (error) {
      await herald.stop();
      throw error;
    }
    return herald;
  }

  seed(
    prefix: string,
    count: number,
    stationsPerUser = 1,
    apns = false,
    push?: { kind: 'fcm' | 'webpush'; subscriptions?: unknown[] },
  ): Promise<SeededUser[]> {
    return this.child.request<SeededUser[]>(
      'seed',
      { prefix, count, stationsPerUser, apns, push: push?.kind, subscriptions: push?.subscriptions },
      300_000,
    );
  }

  liveConnections(): Promise<number> {
    return this.child.request<number>('liveConnections');
  }

  rss(): Promise<number> {
    return this.child.request<number>('rss');
  }

  async stop(removeData = this.ownsDataDir): Promise<void> {
    await this.child.stop(15_000);
    await this.database?.drop();
    if (removeData) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}
