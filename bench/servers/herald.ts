/**
 * Herald under test, in a process of its own: the real node (startApp) with its HERALD_*
 * configuration from the environment. The parent seeds users and stations through the
 * project's own functions (not timed), then drives traffic over loopback.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadConfig } from '../../src/config.ts';
import { startApp, type RunningApp } from '../../src/app.ts';
import { createUser } from '../../src/chat/users.ts';
import { bindStation, registerDevice } from '../../src/chat/devices.ts';
import { serveParent, settledRss } from '../lib/ipc.ts';

let app: RunningApp | undefined;
let profiler: Session | undefined;

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
