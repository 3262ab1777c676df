import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPushDoubles, type PushDoubles } from '../mocks/push-env.ts';
import { startWebPushMock, type WebPushMock } from '../mocks/webpush.ts';
import { startTestServer, type TestServer } from './server.ts';
import type { StoreKind } from './stores.ts';

/** The app ids the Matrix scene's node is configured for, one per provider. */
export const MATRIX_APPS = {
  ios: 'org.matrix.matrixConsole.ios',
  android: 'im.example.android',
  web: 'im.example.web',
} as const;

export interface MatrixScene {
  doubles: PushDoubles;
  pushService: WebPushMock;
  server: TestServer;
  /** POSTs a body (an object, or text as it is) to the node's notify endpoint. */
  notify(body: unknown): Promise<{ status: number; json: Record<string, unknown> }>;
  stop(): Promise<void>;
}

/** The APNs, FCM and Web Push doubles, and a node that is a Matrix push gateway for them. */
export async function startMatrixScene(kind: StoreKind, env: Record<string, string> = {}): Promise<MatrixScene> {
  const doubles = await startPushDoubles();
  const pushService = await startWebPushMock();
  // One CA file that trusts all three doubles.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-matrix-'));
  const caFile = path.join(dir, 'ca.pem');
  fs.writeFileSync(
    caFile,
    `${fs.readFileSync(doubles.env.HERALD_CA_FILE, 'utf8').trim()}\n${fs.readFileSync(pushService.env.HERALD_CA_FILE, 'utf8').trim()}\n`,
  );
  let server: TestServer | undefined;
  try {
    server = await startTestServer(kind, {
      ...doubles.env,
      ...pushService.env,
      HERALD_CA_FILE: caFile,
      HERALD_MATRIX_APPS: `${MATRIX_APPS.ios}=apns, ${MATRIX_APPS.android}=fcm, ${MATRIX_APPS.web}=webpush`,
      ...env,
    });
  } catch (error) {
    await Promise.all([doubles.close(), pushService.close()]);
    throw error;
  }
  const running = server;
  return {
    doubles,
    pushService,
    server: running,
    async notify(body) {
      const response = await fetch(`${running.http}/_matrix/push/v1/notify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      return { status: response.status, json: (await response.json()) as Record<string, unknown> };
    },
    async stop() {
      await running.stop();
      await Promise.all([doubles.close(), pushService.close()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The example notify request of the Push Gateway API specification, for one device. The
 * spec's pushkey stands for an APNs token as iOS apps register it: its bytes in base64.
 */
export function specExample(device: Record<string, unknown>): Record<string, unknown> {
  return {
    notification: {
      event_id: '$3957tyerfgewrf384',
      room_id: '!slw48wfj34rtnrf:example.com',
      type: 'm.room.message',
      sender: '@exampleuser:matrix.org',
      sender_display_name: 'Major Tom',
      room_name: 'Mission Control',
      room_alias: '#exampleroom:matrix.org',
      prio: 'high',
      content: { msgtype: 'm.text', body: "I'm floating in a most peculiar way." },
      counts: { unread: 2, missed_calls: 1 },
      devices: [{ pushkey_ts: 12345678, data: {}, tweaks: { sound: 'bing' }, ...device }],
    },
  };
}

/** An APNs device token (hex) and the pushkey an iOS Matrix app registers for it (base64). */
export function iosPusher(): { token: string; pushkey: string } {
  const bytes = Buffer.from(crypto.getRandomValues(new Uint8Array(32)));
  return { token: bytes.toString('hex'), pushkey: bytes.toString('base64') };
}
