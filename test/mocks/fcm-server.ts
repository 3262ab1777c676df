/**
 * The FCM double (with its OAuth token endpoint) as a process of its own (benchmarks):
 *   node --import tsx test/mocks/fcm-server.ts
 * Writes the service-account JSON and the CA certificate into a temporary directory and
 * prints one JSON line: {url, caFile, serviceAccountFile, projectId, statsUrl}. Point Herald
 * at it with HERALD_FCM_URL, HERALD_FCM_SERVICE_ACCOUNT and HERALD_CA_FILE. GET <statsUrl>/stats
 * answers {accepted, refused, tokensIssued, cpu, firstAcceptedAt, lastAcceptedAt}: the wall
 * clock (performance.timeOrigin + performance.now(), as the bench's processes read it) when
 * the first message since the last GET <statsUrl>/mark and the latest message were accepted,
 * 0 before any. Accepted messages are counted, not kept.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFcmMock } from './fcm.ts';
import { cpuMicros, serveDoubleStats } from './push-double-stats.ts';

const mock = await startFcmMock();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-fcm-double-'));
const serviceAccountFile = path.join(dir, 'service-account.json');
const caFile = path.join(dir, 'ca.pem');
fs.writeFileSync(serviceAccountFile, JSON.stringify(mock.serviceAccount), { mode: 0o600 });
fs.writeFileSync(caFile, mock.caPem);

let accepted = 0;
let refused = 0;
let firstAcceptedAt = 0;
let lastAcceptedAt = 0;
mock.events.on('message', () => {
  accepted++;
  lastAcceptedAt = performance.timeOrigin + performance.now();
  if (firstAcceptedAt === 0) firstAcceptedAt = lastAcceptedAt;
  // A long run would otherwise keep every message.
  if (mock.messages.length > 1000) mock.messages.length = 0;
});
mock.events.on('refused', () => refused++);
const stats = () => ({ accepted, refused, tokensIssued: mock.tokensIssued, cpu: cpuMicros(), firstAcceptedAt, lastAcceptedAt });
const statsServer = await serveDoubleStats(stats, (url) => {
  if (url.pathname !== '/mark') return null;
  firstAcceptedAt = 0;
  return { accepted };
});

process.stdout.write(
  JSON.stringify({ url: mock.url, caFile, serviceAccountFile, projectId: mock.projectId, statsUrl: statsServer.url }) + '\n',
);

const stop = async () => {
  process.stdout.write(JSON.stringify({ stats: stats() }) + '\n');
  await Promise.all([mock.close(), statsServer.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
