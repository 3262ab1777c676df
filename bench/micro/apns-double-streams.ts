/**
 * Micro-benchmark (not part of `npm run bench`): the APNs double's CPU time per push by the
 * number of streams in flight and by whose headers the requests carry, straight from
 * node:http2 with no outbox. Rounds of 20,000 pushes, the variants taking turns; the
 * double (test/mocks/apns-server.ts, 1,000 streams allowed) runs as a process of its own.
 * Usage: node --import tsx bench/micro/apns-double-streams.ts
 *   VARIANTS=herald1000,herald500,bare1000,bare500  ROUNDS=6
 * `herald…` sends Herald's headers (apns-id shared by a user's 10 devices, one expiration,
 * apns-collapse-id, no apns-priority), `bare…` those of bench/clients/apns-http2.ts (a fresh
 * apns-id per push, apns-priority 10); the number is the streams in flight.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import { randomUUID } from 'node:crypto';
import { SignJWT, importPKCS8 } from 'jose';
import { spawnWithJsonLine, stopProcess } from '../lib/ipc.ts';
import { median } from '../lib/stats.ts';
import { pushPayload, type DoubleInfo } from '../clients/apns-common.ts';

const PUSHES = 20_000;
const DEVICES_PER_USER = 10;
const CONVERSATION = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';

interface Variant {
  name: string;
  streams: number;
  heraldHeaders: boolean;
}

const variants: Variant[] = (process.env.VARIANTS ?? 'herald1000,herald500,bare1000,bare500').split(',').map((name) => ({
  name,
  streams: Number(name.replace(/\D/g, '')),
  heraldHeaders: name.startsWith('herald'),
}));
const rounds = Number(process.env.ROUNDS ?? 6);

const double = await spawnWithJsonLine<DoubleInfo & { statsUrl: string }>('APNs double', [
  'test/mocks/apns-server.ts',
  '--max-streams',
  '1000',
]);
const info = double.line;
const ca = fs.readFileSync(info.caFile);
const key = await importPKCS8(fs.readFileSync(info.keyFile, 'utf8'), 'ES256');
const bearer = `bearer ${await new SignJWT({ iss: info.teamId, iat: Math.floor(Date.now() / 1000) })
  .setProtectedHeader({ alg: 'ES256', kid: info.keyId })
  .sign(key)}`;
const doubleCpu = async (): Promise<number> => ((await (await fetch(`${info.statsUrl}/stats`)).json()) as { cpu: number }).cpu;
const tokens = Array.from({ length: PUSHES }, (_, i) => i.toString(16).padStart(64, 'a'));

function headersOf(variant: Variant, i: number, ids: string[], expiration: string): http2.OutgoingHttpHeaders {
  const common = {
    ':method': 'POST',
    ':path': `/3/device/${tokens[i]}`,
    authorization: bearer,
    'apns-topic': info.topic,
    'apns-push-type': 'alert',
  };
  return variant.heraldHeaders
    ? { ...common, 'apns-expiration': expiration, 'apns-id': ids[Math.floor(i / DEVICES_PER_USER)], 'apns-collapse-id': CONVERSATION }
    : { ...common, 'apns-priority': '10', 'apns-expiration': String(Math.floor(Date.now() / 1000) + 86_400), 'apns-id': randomUUID() };
}

/** One round: the double's CPU time per push and the pushes per second. */
async function round(variant: Variant): Promise<{ cpu: number; rate: number }> {
  const session = http2.connect(info.url, { ca });
  session.on('error', () => {});
  await new Promise((resolve) => session.once('remoteSettings', resolve));
  const before = await doubleCpu();
  const ids = Array.from({ length: PUSHES / DEVICES_PER_USER }, () => randomUUID());
  const expiration = String(Math.floor(Date.now() / 1000) + 86_400);
  let next = 0;
  const started = performance.now();
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const stream = session.request(headersOf(variant, i, ids, expiration));
      stream.on('close', () => resolve());
      stream.on('error', () => {});
      stream.resume();
      stream.end(pushPayload(i + 1));
    });
  await Promise.all(
    Array.from({ length: variant.streams }, async () => {
      while (next < PUSHES) await one(next++);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = (await doubleCpu()) - before;
  session.close();
  return { cpu: cpu / PUSHES, rate: PUSHES / seconds };
}

try {
  const cpu = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const variant of variants) {
      const result = await round(variant);
      cpu.get(variant.name)!.push(result.cpu);
      console.log(`${variant.name}: the double's CPU ${result.cpu.toFixed(1)} µs per push, ${Math.round(result.rate)} pushes/s`);
    }
  }
  for (const [name, values] of cpu) console.log(`${name}: median ${median(values).toFixed(1)} µs per push over ${values.length} rounds`);
} finally {
  await stopProcess(double.process);
}
