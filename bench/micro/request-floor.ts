/**
 * Micro-benchmark (not part of `npm run bench`): Herald's server CPU per Ozeki request of a
 * few kinds, to tell the HTTP and authentication floor from the work of a message, beside
 * bare `node:http` and bare Fastify servers answering the same client.
 * Usage: node --import tsx bench/micro/request-floor.ts   (PROFILE=1 writes CPU profiles)
 */
import http from 'node:http';
import { fork } from 'node:child_process';

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
/** A small keep-alive client: status and body text. */
function request(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ statusCode: number; text: string }>((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}
import { HeraldProcess } from '../lib/herald.ts';
import { ozekiTime } from '../../client/ozeki.ts';

const REQUESTS = Number(process.env.REQUESTS ?? 4000);
const CONCURRENCY = 4;
/** CPU per request of a bare server (bench/micro/http-floor-server.ts) under the same client. */
async function bareFloor(kind: 'http' | 'fastify'): Promise<number> {
  const child = fork(new URL('./http-floor-server.ts', import.meta.url).pathname, [kind], { execArgv: ['--import', 'tsx'] });
  const next = () => new Promise<Record<string, number>>((resolve) => child.once('message', (m) => resolve(m as Record<string, number>)));
  const { port } = await next();
  const get = () => request(`http://127.0.0.1:${port}/healthz`);
  for (let i = 0; i < 300; i++) await get();
  child.send('cpu');
  const before = (await next()).cpu;
  let sent = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (sent < REQUESTS) {
        sent++;
        await get();
      }
    }),
  );
  child.send('cpu');
  const after = (await next()).cpu;
  child.send('exit');
  return (after - before) / REQUESTS;
}
for (const kind of ['http', 'fastify'] as const) {
  console.log(
    `${(await bareFloor(kind)).toFixed(0).padStart(5)} µs server CPU per request  bare ${kind === 'http' ? 'node:http' : 'Fastify'} GET /healthz`,
  );
}

const herald = await HeraldProcess.start();
try {
  const users = await herald.seed('floor', 200);
  const base = herald.endpoints.http;
  const post = async (user: (typeof users)[number], api: string, body: Record<string, unknown>) => {
    const response = await request(`${base}/?srv=chatserver&api=${api}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ozeki-station': user.stations[0] },
      body: JSON.stringify({ timestamp: ozekiTime(), ...body }),
    });
    const text = response.text;
    if (response.statusCode !== 200) throw new Error(`${api}: ${response.statusCode} ${text}`);
  };
  const conversations: string[] = [];
  for (let i = 0; i < users.length; i += 2) {
    const response = await request(`${base}/?srv=chatserver&api=chatconversation`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ozeki-station': users[i].stations[0] },
      body: JSON.stringify({ action: 'create', timestamp: ozekiTime(), participantids: [users[i + 1].userid] }),
    });
    const created = JSON.parse(response.text) as { conversation?: { id: string } };
    if (!created.conversation) throw new Error(`create: ${response.text}`);
    conversations.push(created.conversation.id);
  }
  const kinds: Record<string, (i: number) => Promise<void>> = {
    'healthz (no auth, no body)': async () => {
      await request(`${base}/healthz`);
    },
    'chatavailability useronline (auth + one small transaction)': (i) =>
      post(users[(i * 2) % users.length], 'chatavailability', { action: 'useronline' }),
    'chatconversation add (one-to-one message)': (i) =>
      post(users[(i * 2) % users.length], 'chatconversation', {
        action: 'add',
        conversationid: conversations[i % conversations.length],
        message: JSON.stringify({ ID: `m-${i}-${Math.random()}`, Type: 'Message', Created: ozekiTime(), Data: 'aGVsbG8=' }),
      }),
  };
  for (const [name, send] of Object.entries(kinds)) {
    for (let i = 0; i < 300; i++) await send(i); // warm-up
    if (process.env.PROFILE) await herald.child.request('profileStart');
    const before = await herald.child.request<number>('cpu');
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < REQUESTS) await send(next++);
      }),
    );
    const after = await herald.child.request<number>('cpu');
    if (process.env.PROFILE) {
      const file = `bench/profiles/floor-${name.split(' ')[0]}-${Date.now()}.cpuprofile`;
      await herald.child.request('profileStop', { file });
      console.log(`  profile: ${file}`);
    }
    const perRequest = (after - before) / REQUESTS;
    console.log(`${perRequest.toFixed(0).padStart(5)} µs server CPU per request  ${name}`);
  }
} finally {
  agent.destroy();
  await herald.stop();
}
