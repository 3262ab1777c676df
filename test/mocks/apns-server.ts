/**
 * The APNs test double as a process of its own (benchmarks, manual runs):
 *   node --import tsx test/mocks/apns-server.ts [--port N] [--max-streams N] [--record]
 * Writes the provider key and the CA certificate into a temporary directory and prints one
 * JSON line: {url, port, caFile, keyFile, keyId, teamId, topic, publicKeyPem}. Point Herald at
 * it with HERALD_APNS_URL, HERALD_APNS_KEY_FILE, HERALD_APNS_KEY_ID, HERALD_APNS_TEAM_ID,
 * HERALD_APNS_TOPIC and HERALD_CA_FILE. GET /_double/stats answers {accepted, answers,
 * connections, tokenVerifications, peakStreams, cpu}; on SIGTERM/SIGINT the same is printed and it exits.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { startApnsMock } from './apns.ts';

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

const stats = () => {
  const cpu = process.cpuUsage();
  return {
    accepted: mock.accepted,
    answers: Object.fromEntries(mock.answers),
    connections: mock.connections,
    tokenVerifications: mock.tokenVerifications,
    peakStreams: mock.peakStreams,
    // CPU time (user + system) of this process so far, in microseconds: how busy the double was.
    cpu: cpu.user + cpu.system,
  };
};
mock.events.on('stats-request', (stream: http2.ServerHttp2Stream) => {
  stream.respond({ ':status': 200, 'content-type': 'application/json' });
  stream.end(JSON.stringify(stats()));
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
  }) + '\n',
);

const stop = async () => {
  process.stdout.write(JSON.stringify({ stats: stats() }) + '\n');
  await mock.close();
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
