/**
 * The message sender: posts bursts of requests with bounded concurrency over keep-alive
 * HTTP, in a process of its own. For Herald each request is an Ozeki
 * `chatconversation/add`; for the baselines a POST /send that triggers the same fan-out.
 */
import http from 'node:http';
import { serveParent, wallNow } from '../lib/ipc.ts';

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function post(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

function ozekiTime(ms = Date.now()): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

/** The opaque, client-encrypted payload of every bench message (Herald never looks inside). */
const DATA = Buffer.alloc(96, 7).toString('base64');

export interface Target {
  /** ozeki: a chat message (`chatconversation/add`); gateway: `POST /v1/notifications`; plain: a baseline's /send. */
  kind: 'ozeki' | 'gateway' | 'plain';
  baseUrl: string;
  station?: string;
  conversationId?: string;
  /** gateway: the bearer token and the recipients' user ids. */
  token?: string;
  to?: string[];
}

let target: Target | undefined;
let counter = 0;

function requestFor(t: Target, messageId: string): { url: string; body: string; headers: Record<string, string> } {
  if (t.kind === 'plain') return { url: `${t.baseUrl}/send`, body: JSON.stringify({ id: messageId }), headers: {} };
  if (t.kind === 'gateway') {
    // Idempotent by the message id, as the Ozeki add is.
    return {
      url: `${t.baseUrl}/v1/notifications`,
      headers: { authorization: `Bearer ${t.token}`, 'idempotency-key': messageId },
      body: JSON.stringify({ to: t.to, title: 'Message from the bench', conversationid: t.conversationId, data: { messageid: messageId } }),
    };
  }
  return {
    url: `${t.baseUrl}/?srv=chatserver&api=chatconversation`,
    headers: { 'ozeki-station': t.station! },
    body: JSON.stringify({
      clientversioncode: 3,
      timestamp: ozekiTime(),
      action: 'add',
      conversationid: t.conversationId,
      instance: '',
      message: JSON.stringify({ ID: messageId, Type: 'Message', Created: ozekiTime(), ValidUntil: '', Data: DATA }),
    }),
  };
}

serveParent({
  configure(t: Target) {
    target = t;
    return {};
  },
  /** One Ozeki API call (setup: login, create). */
  async ozeki({ baseUrl, station, api, body }: { baseUrl: string; station: string; api: string; body: Record<string, unknown> }) {
    const answer = await post(
      `${baseUrl}/?srv=chatserver&api=${api}`,
      JSON.stringify({ clientversioncode: 3, timestamp: ozekiTime(), ...body }),
      { 'ozeki-station': station },
    );
    const parsed = JSON.parse(answer.body) as Record<string, unknown>;
    if (parsed.status !== 'OK') throw new Error(`${api}/${String(body.action)}: ${answer.status} ${String(parsed.errormessage)}`);
    return parsed;
  },
  /** Sends `count` requests, `concurrency` at a time; t0 is taken just before the first. */
  async burst({ count, concurrency, timeoutMs }: { count: number; concurrency: number; timeoutMs: number }) {
    const t = target;
    if (!t) throw new Error('not configured');
    const deadline = Date.now() + timeoutMs;
    let next = 0;
    let failures = 0;
    let lastError = '';
    const run = counter++;
    const t0 = wallNow();
    const worker = async () => {
      while (next < count && Date.now() < deadline) {
        const i = next++;
        const { url, body, headers } = requestFor(t, `bench-${process.pid}-${run}-${i}`);
        try {
          // A pooled connection the server closed while idle fails at once with ECONNRESET:
          // the request never arrived, so it is sent again, once (an Ozeki add is idempotent
          // by its message ID anyway).
          const answer = await post(url, body, headers).catch((error: NodeJS.ErrnoException) => {
            if (error.code === 'ECONNRESET') return post(url, body, headers);
            throw error;
          });
          if (answer.status !== 200 && answer.status !== 202) {
            failures++;
            lastError = `${answer.status} ${answer.body.slice(0, 200)}`;
          }
        } catch (error) {
          failures++;
          lastError = (error as Error).message;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    return { t0, tEnd: wallNow(), sent: next, failures, lastError };
  },
  stop() {
    agent.destroy();
  },
});
