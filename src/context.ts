import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Config } from './config.ts';
import type { Store } from './store/db.ts';
import type { Hub } from './notify/hub.ts';
import type { Notifier } from './notify/notifier.ts';
import type { Metrics } from './metrics.ts';
import type { Bus } from './cluster/bus.ts';

/** Where this node can be reached; filled in once the listeners are bound. */
export interface Endpoints {
  http: string;
  https: string;
  ws: string;
  wss: string;
  udp: string;
}

/** What every part of a running node shares. Built in app.ts, nowhere else. */
export interface AppContext {
  config: Config;
  store: Store;
  notifier: Notifier;
  hub: Hub;
  /** Reaches every node: committed notifications, and devices to disconnect. */
  bus: Bus;
  log: Logger;
  registry: Registry;
  metrics: Metrics;
  endpoints: Endpoints;
}
