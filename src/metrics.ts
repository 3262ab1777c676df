import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type LabelValues } from 'prom-client';

/** Every metric Herald exports, on one registry per node (tests run several nodes per process). */
export function createMetrics(registry: Registry) {
  collectDefaultMetrics({ register: registry, prefix: 'herald_' });
  return {
    httpRequests: new Counter({
      name: 'herald_http_requests_total',
      help: 'HTTP requests by API surface, route and status code',
      labelNames: ['api', 'route', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'herald_http_request_duration_seconds',
      help: 'HTTP request latency by API surface and route',
      labelNames: ['api', 'route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    notificationsCreated: new Counter({
      name: 'herald_notifications_created_total',
      help: 'Notifications appended to user feeds, by type',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    framesSent: new Counter({
      name: 'herald_frames_sent_total',
      help: 'Notification frames sent to live connections, by channel',
      labelNames: ['channel'] as const,
      registers: [registry],
    }),
    liveConnections: new Gauge({
      name: 'herald_live_connections',
      help: 'Open live connections, by channel',
      labelNames: ['channel'] as const,
      registers: [registry],
    }),
    udpDropped: new Counter({
      name: 'herald_udp_datagrams_dropped_total',
      help: 'UDP datagrams refused, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    udpRetransmits: new Counter({
      name: 'herald_udp_retransmits_total',
      help: 'UDP push datagrams sent again because no ack came in time',
      registers: [registry],
    }),
    udpGaveUp: new Counter({
      name: 'herald_udp_gave_up_total',
      help: 'UDP pushes never acknowledged after every retransmission (the device resumes instead)',
      registers: [registry],
    }),
    udpPending: new Gauge({
      name: 'herald_udp_pending',
      help: 'UDP pushes sent and not yet acknowledged',
      registers: [registry],
    }),
    udpEndpointsForgotten: new Counter({
      name: 'herald_udp_endpoints_forgotten_total',
      help: 'UDP endpoints forgotten after staying silent past HERALD_UDP_ENDPOINT_TIMEOUT_MS',
      registers: [registry],
    }),
    busPossibleLosses: new Counter({
      name: 'herald_bus_possible_losses_total',
      help: "Times the bus between nodes may have lost messages (a gap in a node's sequence, a node gone quiet, the subscription restored)",
      registers: [registry],
    }),
    catchUpRuns: new Counter({
      name: 'herald_live_catch_up_runs_total',
      help: 'Runs comparing live devices with their feeds (after a possible bus loss, and every 30 s)',
      registers: [registry],
    }),
    catchUpDelivered: new Counter({
      name: 'herald_live_catch_up_delivered_total',
      help: 'Notifications handed to live connections from the feed because their bus message did not arrive',
      registers: [registry],
    }),
    catchUpDisconnected: new Counter({
      name: 'herald_live_catch_up_disconnected_total',
      help: 'Live connections ended by a catch-up run because their device was removed or given to another user',
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'herald_rate_limited_total',
      help: 'Calls, handshakes and datagrams refused by a rate limit, by limit (HERALD_LIMIT_*)',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    preferenceSilenced: new Counter({
      name: 'herald_notifications_silenced_total',
      help: "Notifications made silent by their recipient's preferences, by reason (dnd, quiet_hours, conversation_mute)",
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    pushes: new Counter({
      name: 'herald_push_outcomes_total',
      help: 'Push attempts by provider and outcome',
      labelNames: ['provider', 'outcome'] as const,
      registers: [registry],
    }),
    // The console's charts: the last hour of activity, per minute (the counters above only grow).
    activity: new ActivityHistory(),
    pushHolds: new Counter({
      name: 'herald_push_holds_total',
      help: 'Alerting pushes held for a user in use (held), and how their holds ended (sent, cancelled)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** What the console charts, minute by minute. */
export const ACTIVITY_SERIES = ['notifications', 'delivered', 'retried', 'dead', 'failed'] as const;
export type ActivitySeries = (typeof ACTIVITY_SERIES)[number];

/** The last hour, one count per minute, oldest first; the last minute is the current one, still filling. */
export type ActivitySnapshot = { start: number; stepSeconds: 60 } & Record<ActivitySeries, number[]>;

const MINUTE_MS = 60_000;
const MINUTES = 60;

/**
 * Per-minute counts of the last hour, in a ring of 60 slots per series: a slot belongs to one
 * minute (its number since the epoch) and is cleared when a later minute takes it over, so
 * nothing needs a timer. Counted where the counters are, at the same moments.
 */
export class ActivityHistory {
  private readonly minuteOfSlot = new Float64Array(MINUTES).fill(-1);
  private readonly counts = Object.fromEntries(ACTIVITY_SERIES.map((series) => [series, new Float64Array(MINUTES)])) as Record<
    ActivitySeries,
    Float64Array
  >;

  add(series: ActivitySeries, count: number, now = Date.now()): void {
    const minute = Math.floor(now / MINUTE_MS);
    const slot = minute % MINUTES;
    if (this.minuteOfSlot[slot] !== minute) {
      this.minuteOfSlot[slot] = minute;
      for (const name of ACTIVITY_SERIES) this.counts[name][slot] = 0;
    }
    this.counts[series][slot] += count;
  }

  snapshot(now = Date.now()): ActivitySnapshot {
    const current = Math.floor(now / MINUTE_MS);
    const first = current - MINUTES + 1;
    const snapshot = { start: first * MINUTE_MS, stepSeconds: 60 } as ActivitySnapshot;
    for (const name of ACTIVITY_SERIES) {
      const values: number[] = [];
      for (let minute = first; minute <= current; minute++) {
        const slot = minute % MINUTES;
        values.push(this.minuteOfSlot[slot] === minute ? this.counts[name][slot] : 0);
      }
      snapshot[name] = values;
    }
    return snapshot;
  }
}

/** A push outcome as the console charts it: Channel.send's `retry` is a retried push. */
const OUTCOME_SERIES: Record<string, ActivitySeries> = { delivered: 'delivered', retry: 'retried', dead: 'dead', failed: 'failed' };

/** The push counter as the outbox increments it, also counting each outcome into the activity history. */
export function pushOutcomes(metrics: Pick<Metrics, 'pushes' | 'activity'>): Pick<Counter<'provider' | 'outcome'>, 'inc'> {
  return {
    inc(labels: LabelValues<'provider' | 'outcome'>, count: number = 1) {
      metrics.pushes.inc(labels, count);
      const series = OUTCOME_SERIES[String(labels.outcome)];
      if (series) metrics.activity.add(series, count);
    },
  } as Pick<Counter<'provider' | 'outcome'>, 'inc'>;
}

/** This node's open live connections by channel, from the gauge the channels keep. */
export async function liveConnectionCounts(
  metrics: Pick<Metrics, 'liveConnections'>,
): Promise<{ websocket: number; udp: number; web3mq: number }> {
  const counts = { websocket: 0, udp: 0, web3mq: 0 };
  for (const { labels, value } of (await metrics.liveConnections.get()).values) {
    if (labels.channel === 'ws') counts.websocket += value;
    else if (labels.channel === 'udp' || labels.channel === 'web3mq') counts[labels.channel] += value;
  }
  return counts;
}
