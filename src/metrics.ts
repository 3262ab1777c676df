import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
    pushHolds: new Counter({
      name: 'herald_push_holds_total',
      help: 'Alerting pushes held for a user in use (held), and how their holds ended (sent, cancelled)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
