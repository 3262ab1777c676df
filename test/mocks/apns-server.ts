/**
 * The APNs test double as a process of its own (benchmarks, manual runs):
 *   node --import tsx test/mocks/apns-server.ts [--port N] [--max-streams N] [--record]
 * Writes the provider key and the CA certificate into a temporary directory and prints one
 * JSON line: {url, port, caFile, keyFile, keyId, teamId, topic, publicKeyPem}. Point Herald at
 * it with HERALD_APNS_URL, HERALD_APNS_KEY_FILE, HERALD_APNS_KEY_ID, HERALD_APNS_TEAM_ID,
 * HERALD_APNS_TOPIC and HERALD_CA_FILE. GET <statsUrl>/stats (a plain HTTP endpoint beside
 * the double, so that watching it costs the double's HTTP/2 server nothing) answers {accepted,
 * answers, connections, tokenVerifications, peakStreams, cpu, firstAcceptedAt, lastAcceptedAt}:
 * the wall clock (performance.timeOrigin + performance.now(), as the bench's processes read it)
 * when the first push since the last GET <statsUrl>/mark and the latest push were accepted, 0
 * before any. On SIGTERM/SIGINT the same is printed and it exits.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startApnsMock } from './apns.ts';
import { cpuMicros, serveDoubleStats } from './push-double-stats.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'max-streams': { type: 'string', default: '1000' },
    host: { type: 'string', default: '127.0.0.1' },
    record: { type: 'boolean', default: false },
  },
});
const port = Number(values.port);
const maxStreams = Number(values['max-streams']);
if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be a port number');
if (!Number.isInteger(maxStreams) || maxStreams < 1) throw new Error('--max-streams must be a positive whole number');

const mock = await startApnsMock({ port, host: values.host, maxConcurrentStreams: maxStreams, record: values.record });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-apns-double-'));
const keyFile = path.join(dir, `AuthKey_${mock.keyId}.p8`);
const caFile = path.join(dir, 'ca.pem');
fs.writeFileSync(keyFile, mock.keyPem, { mode: 0o600 });
fs.writeFileSync(caFile, mock.caPem);

let firstAcceptedAt = 0;
let lastAcceptedAt = 0;
mock.events.on('push', () => {
  lastAcceptedAt = performance.timeOrigin + performance.now();
  if (firstAcceptedAt === 0) firstAcceptedAt = lastAcceptedAt;
});
const stats = () => ({
  accepted: mock.accepted,
  answers: Object.fromEntries(mock.answers),
  connections: mock.connections,
  tokenVerifications: mock.tokenVerifications,
  peakStreams: mock.peakStreams,
  // CPU time (user + system) of this process so far, in microseconds: how busy the double was.
  cpu: cpuMicros(),
  firstAcceptedAt,
  lastAcceptedAt,
});
const statsServer = await serveDoubleStats(stats, (url) => {
  if (url.pathname !== '/mark') return null;
  firstAcceptedAt = 0;
  return { accepted: mock.accepted };
});

process.stdout.write(
  JSON.stringify({
    url: mock.url,
    port: mock.port,
    caFile,
    keyFile,
    keyId: mock.keyId,
    teamId: mock.teamId,
    topic: mock.topic,
    publicKeyPem: mock.publicKeyPem,
    statsUrl: statsServer.url,
  }) + '\n',
);

const stop = async () => {
  process.stdout.write(JSON.stringify({ stats: stats() }) + '\n');
  await Promise.all([mock.close(), statsServer.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
