/**
 * The Web Push double as a process of its own (benchmarks):
 *   node --import tsx test/mocks/webpush-server.ts
 * Prints one JSON line: {origin, caFile, statsUrl}. GET <statsUrl>/subscribe?n=N makes N
 * subscriptions and answers [{endpoint, keys: {p256dh, auth}}] as a browser would hand them
 * over (the double keeps no private key: nobody decrypts in a benchmark). GET <statsUrl>/stats
 * answers {accepted, answers, connections, cpu}. Accepted messages are counted, not kept.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createECDH, randomBytes } from 'node:crypto';
import { startWebPushMock } from './webpush.ts';
import { cpuMicros, serveDoubleStats } from './push-double-stats.ts';

const mock = await startWebPushMock();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-webpush-double-'));
const caFile = path.join(dir, 'ca.pem');
fs.writeFileSync(caFile, mock.caPem);

let accepted = 0;
const stats = () => {
  accepted += mock.messages.length;
  mock.messages.length = 0;
  return { accepted, answers: Object.fromEntries(mock.answers), connections: mock.connections, cpu: cpuMicros() };
};
const statsServer = await serveDoubleStats(stats, (url) => {
  if (url.pathname !== '/subscribe') return null;
  const count = Math.min(100_000, Math.max(1, Number(url.searchParams.get('n')) || 1));
  return Array.from({ length: count }, () => {
    // A browser's subscription: its own P-256 key and 16-byte auth secret.
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    return {
      endpoint: mock.subscribe(),
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') },
    };
  });
});

process.stdout.write(JSON.stringify({ origin: mock.origin, caFile, statsUrl: statsServer.url }) + '\n');

const stop = async () => {
  process.stdout.write(JSON.stringify({ stats: stats() }) + '\n');
  await Promise.all([mock.close(), statsServer.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
