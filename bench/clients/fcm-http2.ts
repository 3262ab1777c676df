/**
 * The ceiling for FCM: a bare node:http2 client on one connection to the FCM double, one
 * OAuth access token (fetched once at setup), many concurrent streams, each a
 * messages:send of the size and shape of Herald's chat-message push.
 */
import fs from 'node:fs';
import http2 from 'node:http2';
import { SignJWT, importPKCS8 } from 'jose';
import { serveParent, wallNow } from '../lib/ipc.ts';

export interface FcmDoubleInfo {
  url: string;
  caFile: string;
  serviceAccountFile: string;
  projectId: string;
  statsUrl: string;
}

/** The FCM message Herald sends for one chat message, to `token` (its own badge each). */
export function fcmBody(token: string, badge: number): string {
  const conversation = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
  return JSON.stringify({
    message: {
      token,
      data: {
        id: '8a6e0804-2bd0-4672-b79d-d97027f9071b',
        seq: String(badge),
        type: 'message',
        conversationid: conversation,
        sender: '5d41402abc4b2a76b9719d911017c592',
      },
      android: {
        priority: 'high',
        ttl: '86400s',
        collapse_key: conversation,
        notification: { tag: conversation, notification_count: badge, sound: 'default' },
      },
      notification: { title: '1 message from Bench 0 in Bench push group', body: '' },
    },
  });
}

let session: http2.ClientHttp2Session | undefined;
let bearer = '';
let path = '';

async function accessToken(info: FcmDoubleInfo, ca: Buffer): Promise<string> {
  const account = JSON.parse(fs.readFileSync(info.serviceAccountFile, 'utf8')) as Record<string, string>;
  const now = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({ scope: 'https://www.googleapis.com/auth/firebase.messaging' })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: account.private_key_id })
    .setIssuer(account.client_email)
    .setAudience(account.token_uri)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(await importPKCS8(account.private_key, 'RS256'));
  const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString();
  const answer = await request(http2.connect(new URL(account.token_uri).origin, { ca }), new URL(account.token_uri).pathname, form, {
    'content-type': 'application/x-www-form-urlencoded',
  });
  const token = (JSON.parse(answer.body) as { access_token?: string }).access_token;
  if (answer.status !== 200 || !token) throw new Error(`token endpoint: ${answer.status} ${answer.body}`);
  return token;
}

function request(
  s: http2.ClientHttp2Session,
  requestPath: string,
  body: string,
  headers: http2.OutgoingHttpHeaders,
  closeAfter = true,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':method': 'POST', ':path': requestPath, ...headers });
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      if (closeAfter) s.close();
      resolve({ status, body: Buffer.concat(chunks).toString('utf8') });
    });
    stream.on('error', reject);
    stream.end(body);
  });
}

serveParent({
  async setup(info: FcmDoubleInfo) {
    const ca = fs.readFileSync(info.caFile);
    bearer = `Bearer ${await accessToken(info, ca)}`;
    path = `/v1/projects/${info.projectId}/messages:send`;
    session = http2.connect(info.url, { ca });
    session.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      session!.once('remoteSettings', () => resolve());
      session!.once('error', reject);
    });
    return { maxConcurrentStreams: session.remoteSettings.maxConcurrentStreams };
  },
  /** Sends one message per token, at most `streams` in flight; t0 just before the first. */
  async run({ tokens, streams, timeoutMs }: { tokens: string[]; streams: number; timeoutMs: number }) {
    const s = session!;
    const limit = Math.min(streams, s.remoteSettings.maxConcurrentStreams ?? streams);
    const deadline = Date.now() + timeoutMs;
    let next = 0;
    let delivered = 0;
    let failed = 0;
    let lastError = '';
    const headers = { authorization: bearer, 'content-type': 'application/json; charset=utf-8' };
    const t0 = wallNow();
    await Promise.all(
      Array.from({ length: limit }, async () => {
        while (next < tokens.length && Date.now() < deadline) {
          const i = next++;
          try {
            const answer = await request(s, path, fcmBody(tokens[i], i + 1), headers, false);
            if (answer.status === 200) delivered++;
            else {
              failed++;
              lastError = `${answer.status} ${answer.body.slice(0, 200)}`;
            }
          } catch (error) {
            failed++;
            lastError = (error as Error).message;
          }
        }
      }),
    );
    return { t0, tEnd: wallNow(), delivered, failed, lastError };
  },
  cpu() {
    const { user, system } = process.cpuUsage();
    return user + system;
  },
  stop() {
    session?.close();
  },
});
