// A misbehaving client in a process of its own: posts FLOOD Ozeki adds through one station,
// CONCURRENCY at a time, and prints every answer's status and Retry-After (and the first
// refusal's body) as one JSON line. Run by test/rate-limits-flood.test.ts.
import http from 'node:http';

const { FLOOD_URL, FLOOD_STATION, FLOOD_CONVERSATION, FLOOD_COUNT, FLOOD_CONCURRENCY, FLOOD_PREFIX } = process.env;
const count = Number(FLOOD_COUNT);
const concurrency = Number(FLOOD_CONCURRENCY);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

function ozekiTime() {
  return new Date().toISOString().slice(0, 19).replace('T', ' ');
}

function post(id) {
  const now = ozekiTime();
  const body = JSON.stringify({
    clientversioncode: 3,
    timestamp: now,
    action: 'add',
    conversationid: FLOOD_CONVERSATION,
    instance: '',
    message: JSON.stringify({ ID: id, Type: 'Message', Created: now, ValidUntil: '', Data: 'ZGF0YQ==' }),
  });
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${FLOOD_URL}/?srv=chatserver&api=chatconversation`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'ozeki-station': FLOOD_STATION },
      },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () =>
          resolve({
            status: response.statusCode,
            retryAfter: response.headers['retry-after'] ?? null,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const answers = [];
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < count) answers.push(await post(`${FLOOD_PREFIX}-${next++}`));
  }),
);
const seconds = (performance.now() - started) / 1000;
agent.destroy();
process.stdout.write(JSON.stringify({ seconds, answers }) + '\n');
