/**
 * The ceiling for mobile push: a bare node:http2 client on one connection to the APNs
 * double, one provider token (ES256, signed once), many concurrent streams.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import { randomUUID } from 'node:crypto';
import { SignJWT, importPKCS8 } from 'jose';
import { serveParent, wallNow } from '../lib/ipc.ts';
import { pushPayload, type DoubleInfo } from './apns-common.ts';

let session: http2.ClientHttp2Session | undefined;
let bearer = '';
let info: DoubleInfo | undefined;

serveParent({
  async setup(double: DoubleInfo) {
    info = double;
    const key = await importPKCS8(fs.readFileSync(double.keyFile, 'utf8'), 'ES256');
    bearer = `bearer ${await new SignJWT({ iss: double.teamId, iat: Math.floor(Date.now() / 1000) })
      .setProtectedHeader({ alg: 'ES256', kid: double.keyId })
      .sign(key)}`;
    session = http2.connect(double.url, { ca: fs.readFileSync(double.caFile) });
    session.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      session!.once('remoteSettings', () => resolve());
      session!.once('error', reject);
    });
    return { maxConcurrentStreams: session.remoteSettings.maxConcurrentStreams };
  },
  /** Sends `tokens.length` pushes, at most `streams` in flight; t0 just before the first. */
  async run({ tokens, streams, timeoutMs }: { tokens: string[]; streams: number; timeoutMs: number }) {
    const s = session!;
    const limit = Math.min(streams, s.remoteSettings.maxConcurrentStreams ?? streams);
    const deadline = Date.now() + timeoutMs;
    let next = 0;
    let delivered = 0;
    let failed = 0;
    let lastError = '';
    const t0 = wallNow();
    const one = (token: string, badge: number) =>
      new Promise<void>((resolve) => {
        const stream = s.request({
          ':method': 'POST',
          ':path': `/3/device/${token}`,
          authorization: bearer,
          'apns-topic': info!.topic,
          'apns-push-type': 'alert',
          'apns-priority': '10',
          'apns-expiration': String(Math.floor(Date.now() / 1000) + 86_400),
          'apns-id': randomUUID(),
        });
        let status = 0;
        const chunks: Buffer[] = [];
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          if (status === 200) delivered++;
          else {
            failed++;
            lastError = `${status} ${Buffer.concat(chunks).toString()}`;
          }
          resolve();
        });
        stream.on('error', (error) => {
          failed++;
          lastError = error.message;
          resolve();
        });
        stream.end(pushPayload(badge));
      });
    await Promise.all(
      Array.from({ length: limit }, async () => {
        while (next < tokens.length && Date.now() < deadline) {
          const i = next++;
          await one(tokens[i], i + 1);
        }
      }),
    );
    return { t0, tEnd: wallNow(), delivered, failed, lastError };
  },
  /** CPU time this process has used so far (user + system), in microseconds. */
  cpu() {
    const { user, system } = process.cpuUsage();
    return user + system;
  },
  stop() {
    session?.close();
  },
});
