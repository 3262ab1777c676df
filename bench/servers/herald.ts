/**
 * Herald under test, in a process of its own: the real node (startApp) with its HERALD_*
 * configuration from the environment. The parent seeds users and stations through the
 * project's own functions (not timed), then drives traffic over loopback.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import {
  createHistogram,
  monitorEventLoopDelay,
  PerformanceObserver,
  type IntervalHistogram,
  type RecordableHistogram,
} from 'node:perf_hooks';
import { loadConfig } from '../../src/config.ts';
import { startApp, type RunningApp } from '../../src/app.ts';
import { createUser } from '../../src/chat/users.ts';
import { bindStation, registerDevice } from '../../src/chat/devices.ts';
import { serveParent, settledRss } from '../lib/ipc.ts';

let app: RunningApp | undefined;

/**
 * On PostgreSQL, every statement the node sends, by its text: what one message costs in
 * round trips. Counted in pg's Client.query, which every statement of the pool goes through.
 */
const statements = new Map<string, number>();
if (process.env.HERALD_DATABASE_URL) {
  const { default: pg } = await import('pg');
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
    const config = args[0] as string | { text?: string };
    const text = (typeof config === 'string' ? config : (config?.text ?? '?')).replace(/\s+/g, ' ').slice(0, 90);
    statements.set(text, (statements.get(text) ?? 0) + 1);
    return query.apply(this, args);
  } as typeof pg.Client.prototype.query;
}
let profiler: Session | undefined;
/** The event loop's delays and the garbage collector's pauses over a measured run (stallsStart → stallsStop). */
let loopDelay: IntervalHistogram | undefined;
let gcPauses: Array<{ duration: number; kind: number }> = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const entry of list.getEntries())
    gcPauses.push({ duration: entry.duration, kind: (entry as { detail?: { kind?: number } }).detail?.kind ?? 0 });
});

/** The notifier's transactions over a measured run, µs: their oldest unit's wait, BEGIN → COMMIT, and the publishing after it. */
let batches:
  | { units: number; waited: RecordableHistogram; work: RecordableHistogram; publish: RecordableHistogram; unit: RecordableHistogram }
  | undefined;
let batchesWatched = false;
/** The checkpointer's holds of the writers when the run started. */
let holdsBefore = { count: 0, maxMs: 0, totalMs: 0 };

/** max and p99 of a histogram of µs, in ms. */
function maxAndP99(histogram: RecordableHistogram): { max: number; p99: number } {
  return histogram.count === 0 ? { max: 0, p99: 0 } : { max: histogram.max / 1000, p99: histogram.percentile(99) / 1000 };
}

interface SeedArgs {
  /** Users to create: `${prefix}${i}@bench.example`. */
  count: number;
  prefix: string;
  stationsPerUser: number;
  /** Register every station as an iOS device with an APNs token. */
  apns?: boolean;
  /** Or as an Android device with an FCM registration token, or a browser with one of these Web Push subscriptions (one per station, in order). */
  push?: 'fcm' | 'webpush';
  subscriptions?: Array<{ endpoint: string; keys: { p256dh: string; auth: string } }>;
}

/** A bench station id: 32 hex characters, stable for a given user and device. */
function station(prefix: string, user: number, device: number): string {
  return createHash('md5').update(`${prefix}:${user}:${device}`).digest('hex');
}

serveParent({
  async start() {
    app = await startApp(loadConfig());
    return app.endpoints;
  },
  async seed(args: SeedArgs) {
    if (!app) throw new Error('not started');
    const db = app.parts.store.db;
    const users: Array<{ userid: string; apikey: string; stations: string[] }> = [];
    const CHUNK = 500;
    for (let start = 0; start < args.count; start += CHUNK) {
      await db.transaction().execute(async (trx) => {
        for (let i = start; i < Math.min(args.count, start + CHUNK); i++) {
          const { userid, apikey } = await createUser(trx, app!.parts.store.secrets, {
            email: `${args.prefix}${i}@bench.example`,
            name: `Bench ${i}`,
          });
          const stations: string[] = [];
          for (let d = 0; d < args.stationsPerUser; d++) {
            const id = station(args.prefix, i, d);
            stations.push(id);
            await bindStation(trx, app!.parts.store.secrets, id, userid, args.apns ? 'ios' : args.push === 'fcm' ? 'android' : 'browser');
          }
          users.push({ userid, apikey, stations });
        }
      });
    }
    if (args.apns) {
      for (const user of users) {
        for (const id of user.stations) {
          await registerDevice(db, id, user.userid, { platform: 'ios', pushToken: `${id}${id}` });
        }
      }
    }
    if (args.push) {
      let next = 0;
      for (const user of users) {
        for (const id of user.stations) {
          if (args.push === 'fcm') {
            await registerDevice(db, id, user.userid, { platform: 'android', pushToken: `fcm-bench:${id}` });
            continue;
          }
          const subscription = args.subscriptions?.[next++];
          if (!subscription) throw new Error('fewer Web Push subscriptions than stations');
          await registerDevice(db, id, user.userid, { platform: 'browser', pushSubscription: subscription });
        }
      }
    }
    return users;
  },
  /** CPU profile of just the measured part (the fan-out bursts), not of seeding and connecting. */
  async profileStart() {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 200 });
    await profiler.post('Profiler.start');
    return {};
  },
  async profileStop({ file }: { file: string }) {
    if (!profiler) throw new Error('no profile running');
    const { profile } = await profiler.post('Profiler.stop');
    fs.writeFileSync(file, JSON.stringify(profile));
    profiler.disconnect();
    profiler = undefined;
    return { file };
  },
  /** Starts recording the event loop's delays and the collector's pauses. */
  stallsStart() {
    loopDelay?.disable();
    loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    gcPauses = [];
    gcObserver.observe({ entryTypes: ['gc'] });
    if (app && !batchesWatched) {
      batchesWatched = true;
      app.parts.notifier.onBatchTimed((times) => {
        if (!batches) return;
        batches.units += times.units;
        batches.waited.record(Math.max(1, Math.round(times.waitedMs * 1000)));
        batches.work.record(Math.max(1, Math.round(times.workMs * 1000)));
        batches.publish.record(Math.max(1, Math.round(times.publishMs * 1000)));
        for (const ms of times.unitsMs) batches.unit.record(Math.max(1, Math.round(ms * 1000)));
      });
    }
    batches = { units: 0, waited: createHistogram(), work: createHistogram(), publish: createHistogram(), unit: createHistogram() };
    holdsBefore = app?.parts.store.logHolds?.() ?? { count: 0, maxMs: 0, totalMs: 0 };
    return {};
  },
  /** What was recorded since stallsStart, in ms: the longest loop delay, its p99, the longest and summed GC pauses. */
  stallsStop() {
    gcObserver.disconnect();
    const histogram = loopDelay;
    loopDelay = undefined;
    histogram?.disable();
    const counted = batches;
    batches = undefined;
    const holds = app?.parts.store.logHolds?.() ?? { count: 0, maxMs: 0, totalMs: 0 };
    return {
      /** Transactions, units per transaction, and (ms) their oldest unit's wait, BEGIN → COMMIT, and publishing. */
      batches: counted
        ? {
            count: counted.work.count,
            unitsPerBatch: counted.work.count ? counted.units / counted.work.count : 0,
            waited: maxAndP99(counted.waited),
            work: maxAndP99(counted.work),
            publish: maxAndP99(counted.publish),
            /** Each message from transact() to its notifications published: the node's own part of the latency after the request was read. */
            unit: maxAndP99(counted.unit),
          }
        : undefined,
      /** Writers held for the log's last round during the run: times, summed ms, and the longest (over the whole life when it came before). */
      logHolds: { count: holds.count - holdsBefore.count, totalMs: holds.totalMs - holdsBefore.totalMs, maxMs: holds.maxMs },
      loopMax: histogram ? histogram.max / 1e6 : NaN,
      loopP99: histogram ? histogram.percentile(99) / 1e6 : NaN,
      gcMax: gcPauses.reduce((a, b) => (b.duration > a ? b.duration : a), 0),
      gcTotal: gcPauses.reduce((a, b) => a + b.duration, 0),
      /** Longest pause of each kind (1 minor, 4 major, 8 incremental marking, 16 weak callbacks). */
      gcByKind: Object.fromEntries(
        [1, 4, 8, 16].map((kind) => [kind, gcPauses.filter((p) => p.kind === kind).reduce((a, b) => (b.duration > a ? b.duration : a), 0)]),
      ),
      heapUsedMb: process.memoryUsage().heapUsed / 1e6,
    };
  },
  /** The statements counted since the last call (PostgreSQL only), most frequent first. */
  statements() {
    const counted = [...statements].sort((a, b) => b[1] - a[1]);
    statements.clear();
    return counted;
  },
  /**
   * CPU time (user + system, µs) the PostgreSQL backends serving this node's database have
   * used so far, read from /proc (the server runs on this machine): on SQLite that work is
   * part of the node's own CPU time. Backends that ended took their time with them.
   */
  async databaseCpu() {
    if (!app || app.parts.store.dialect !== 'postgres') return 0;
    const { sql } = await import('kysely');
    const rows = await sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`.execute(
      app.parts.store.db,
    );
    const ticks = 1_000_000 / 100; // USER_HZ is 100 on Linux
    let total = 0;
    for (const { pid } of rows.rows) {
      try {
        const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        total += (Number(fields[11]) + Number(fields[12])) * ticks;
      } catch {
        // the backend ended in between
      }
    }
    return total;
  },
  liveConnections: () => app?.parts.hub.connectionCount ?? 0,
  rss: () => settledRss(),
  /** CPU time this process has used so far (user + system), in microseconds. */
  cpu: () => {
    const { user, system } = process.cpuUsage();
    return user + system;
  },
  async stop() {
    await app?.stop();
  },
});
