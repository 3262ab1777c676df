/**
 * The peer for mobile push: @parse/node-apn with token auth, pointed at the APNs double,
 * one notification per device (each with its own badge), at most `streams` in flight.
 */
import fs from 'node:fs';
import apn from '@parse/node-apn';
import { serveParent, wallNow } from '../lib/ipc.ts';
import { pushPayload, type DoubleInfo } from './apns-common.ts';

let provider: apn.Provider | undefined;
let topic = '';

serveParent({
  setup(double: DoubleInfo) {
    topic = double.topic;
    const url = new URL(double.url);
    provider = new apn.Provider({
      token: { key: fs.readFileSync(double.keyFile, 'utf8'), keyId: double.keyId, teamId: double.teamId },
      address: url.hostname,
      port: Number(url.port),
      ca: [fs.readFileSync(double.caFile)],
      production: false,
      // The default 5 s is short on a busy shared machine; Herald's channel waits 30 s too.
      requestTimeout: 30_000,
    });
    return {};
  },
  async run({ tokens, streams, timeoutMs }: { tokens: string[]; streams: number; timeoutMs: number }) {
    const p = provider!;
    const deadline = Date.now() + timeoutMs;
    let next = 0;
    let delivered = 0;
    let failed = 0;
    let lastError = '';
    const t0 = wallNow();
    await Promise.all(
      Array.from({ length: Math.min(streams, tokens.length) }, async () => {
        while (next < tokens.length && Date.now() < deadline) {
          const i = next++;
          const note = new apn.Notification();
          note.rawPayload = JSON.parse(pushPayload(i + 1));
          note.topic = topic;
          note.pushType = 'alert';
          note.priority = 10;
          note.expiry = Math.floor(Date.now() / 1000) + 86_400;
          const result = await p.send(note, tokens[i]);
          delivered += result.sent.length;
          failed += result.failed.length;
          if (result.failed.length > 0) lastError = JSON.stringify(result.failed[0]).slice(0, 200);
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
    provider?.shutdown();
  },
});
