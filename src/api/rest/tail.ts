import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { TooManyRequests } from '../../errors.ts';
import type { Notification } from '../../model/notification.ts';
import type { NotificationWatcher } from '../../notify/watchers.ts';
import { SECURITY } from './schemas.ts';

/*
 * GET /v1/notifications/tail: every notification as it is committed, as Server-Sent Events
 * (text/event-stream). The console reads it with fetch(), which can send the bearer token;
 * EventSource cannot send headers. Each event is one JSON object on a `data:` line: who, which
 * sequence, what kind and the title, never the body or data.
 */

export interface TailRouteParts {
  /** Starts hearing every committed notification (every node's, through the bus); the answer stops it. */
  watchNotifications(watcher: NotificationWatcher): () => void;
  /** Refuses a caller without the admin token or `feed:read`. */
  authorize(request: FastifyRequest): Promise<void>;
  /** Open tails per node (each costs a watcher on every publish). */
  maxTails?: number;
  heartbeatMs?: number;
}

export const MAX_TAILS = 10;
/** A comment line this often keeps proxies from closing a quiet stream. */
export const TAIL_HEARTBEAT_MS = 15_000;
/** A reader this far behind is let go rather than buffered for without end. */
const MAX_BUFFERED_BYTES = 1 << 20;

/** The events of one publish, written once for every open tail (a group message publishes thousands). */
const eventTexts = new WeakMap<readonly Notification[], string>();
function eventText(notifications: readonly Notification[]): string {
  let text = eventTexts.get(notifications);
  if (text === undefined) {
    text = '';
    for (const n of notifications) text += `data: ${JSON.stringify(tailEvent(n))}\n\n`;
    eventTexts.set(notifications, text);
  }
  return text;
}

/** One notification as the tail shows it. */
export function tailEvent(n: Notification) {
  return {
    userid: n.userId,
    seq: n.seq,
    id: n.id,
    type: n.type,
    title: n.title,
    conversationid: n.conversationId,
    badge: n.badge,
    silent: n.silent,
    created: n.createdAt,
  };
}

const TailEvent = Type.Object({
  userid: Type.String(),
  seq: Type.Integer(),
  id: Type.String(),
  type: Type.String({ description: 'message, clean, availability, system.friend_request, … or a backend’s own kind such as app.invoice' }),
  title: Type.String(),
  conversationid: Type.Union([Type.String(), Type.Null()]),
  badge: Type.Integer(),
  silent: Type.Boolean(),
  created: Type.Integer({ description: 'unix milliseconds' }),
});

/** The tails open on this node (both HTTP servers register the routes; the limit is the node's). */
export class OpenTails {
  private readonly ends = new Set<() => void>();

  get size(): number {
    return this.ends.size;
  }

  add(end: () => void): () => void {
    this.ends.add(end);
    return () => void this.ends.delete(end);
  }

  /** Ends every tail: the node is stopping, and a server waits for its open responses. */
  endAll(): void {
    for (const end of [...this.ends]) end();
  }
}

export function tailRoutes(app: FastifyInstance, parts: TailRouteParts, open: OpenTails): void {
  const maxTails = parts.maxTails ?? MAX_TAILS;
  const heartbeatMs = parts.heartbeatMs ?? TAIL_HEARTBEAT_MS;
  // Before the server waits for open responses to finish: a tail never finishes on its own.
  app.addHook('preClose', async () => open.endAll());

  app.get(
    '/notifications/tail',
    {
      preValidation: (request) => parts.authorize(request),
      schema: {
        summary: 'Every notification as it is committed, as Server-Sent Events (the console’s live tail)',
        description: `Each event's data is one JSON object: ${Object.keys(TailEvent.properties).join(', ')}. A comment line every ${heartbeatMs / 1000} s keeps the stream open; at most ${maxTails} tails per node.`,
        tags: ['console', 'notifications'],
        security: SECURITY.admin,
        response: { 200: Type.String({ description: 'text/event-stream: a `data: {…}` line per notification' }) },
      },
    },
    async (request, reply) => streamTail(request, reply, parts, open, maxTails, heartbeatMs),
  );
}

function streamTail(
  request: FastifyRequest,
  reply: FastifyReply,
  parts: TailRouteParts,
  open: OpenTails,
  maxTails: number,
  heartbeatMs: number,
): void {
  if (open.size >= maxTails) throw new TooManyRequests(`at most ${maxTails} live tails may be open on this node`, heartbeatMs);
  // From here the stream is written by hand; headers set so far (CORS) go with it.
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
    // The stream is the connection's last answer: when it ends, so does the connection.
    connection: 'close',
  });
  raw.write(': Herald notification tail\n\n');

  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(heartbeat);
    stopWatching();
    forget();
    raw.end();
  };
  const send = (text: string) => {
    if (ended) return;
    raw.write(text);
    if (raw.writableLength > MAX_BUFFERED_BYTES) end();
  };
  const stopWatching = parts.watchNotifications((notifications) => send(eventText(notifications)));
  const heartbeat = setInterval(() => send(': heartbeat\n\n'), heartbeatMs);
  heartbeat.unref();
  const forget = open.add(end);
  request.raw.socket.on('close', end);
  raw.on('close', end);
}
