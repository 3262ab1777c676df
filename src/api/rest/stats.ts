import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { ActivitySnapshot } from '../../metrics.ts';
import type { OutboxBacklog } from '../../store/deliveries.ts';
import { SECURITY } from './schemas.ts';

/** What GET /v1/stats reports: this node's live connections and activity, and the shared outbox. */
export interface NodeStats {
  connections: { websocket: number; udp: number; web3mq: number };
  outbox: OutboxBacklog;
  series: ActivitySnapshot;
}

export interface StatsRouteParts {
  stats(): Promise<NodeStats>;
  /** Refuses a caller without the admin token or `stats:read`. */
  authorize(request: FastifyRequest): Promise<void>;
}

const Count = Type.Integer({ minimum: 0 });
const PerMinute = (description: string) => Type.Array(Type.Number({ minimum: 0 }), { minItems: 60, maxItems: 60, description });
const Backlog = Type.Object({
  pending: Type.Integer({ description: 'due or in flight, not yet answered by the provider' }),
  retrying: Type.Integer({ description: 'waiting for another attempt (the provider asked to retry or could not be reached)' }),
  held: Type.Integer({ description: 'alerts waiting for the presence-aware hold to end' }),
  dead: Type.Integer({ description: 'refused for good: the provider called the token dead' }),
});

const StatsAnswer = Type.Object({
  connections: Type.Object(
    { websocket: Count, udp: Count, web3mq: Count },
    { description: "this node's open live connections, by channel" },
  ),
  outbox: Type.Object({ apns: Backlog, fcm: Backlog, webpush: Backlog }, { description: 'the outbox of every node, by provider' }),
  series: Type.Object(
    {
      start: Type.Integer({ description: 'unix milliseconds: the start of the first minute' }),
      stepSeconds: Type.Literal(60),
      notifications: PerMinute('notifications committed by this node, per minute; the last is the current minute'),
      delivered: PerMinute('pushes the providers accepted'),
      retried: PerMinute('pushes the providers asked to retry, or that could not reach them'),
      dead: PerMinute('pushes refused because the token is dead'),
      failed: PerMinute('pushes refused for good for another reason'),
    },
    { description: "this node's last hour, minute by minute, oldest first (since the node started)" },
  ),
});

export function statsRoutes(app: FastifyInstance, parts: StatsRouteParts): void {
  app.get(
    '/stats',
    {
      preValidation: (request) => parts.authorize(request),
      schema: {
        summary: "Live connections, the outbox's backlog and the last hour's notifications and push outcomes (the console)",
        tags: ['console'],
        security: SECURITY.admin,
        response: { 200: StatsAnswer },
      },
    },
    () => parts.stats(),
  );
}
