import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startApnsMock, type ApnsMock, type ApnsMockOptions } from './apns.ts';
import { startFcmMock, type FcmMock } from './fcm.ts';

/** Both push doubles and the HERALD_* variables that point a node at them. */
export interface PushDoubles {
  apns: ApnsMock;
  fcm: FcmMock;
  /** HERALD_APNS_*, HERALD_FCM_*, HERALD_CA_FILE for startTestServer or a child process. */
  env: Record<string, string>;
  close(): Promise<void>;
}

export async function startPushDoubles(apnsOptions: ApnsMockOptions = {}): Promise<PushDoubles> {
  const [apns, fcm] = await Promise.all([startApnsMock(apnsOptions), startFcmMock()]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-push-'));
  const keyFile = path.join(dir, `AuthKey_${apns.keyId}.p8`);
  const accountFile = path.join(dir, 'service-account.json');
  const caFile = path.join(dir, 'doubles-ca.pem');
  fs.writeFileSync(keyFile, apns.keyPem, { mode: 0o600 });
  fs.writeFileSync(accountFile, JSON.stringify(fcm.serviceAccount), { mode: 0o600 });
  fs.writeFileSync(caFile, `${apns.caPem.trim()}\n${fcm.caPem.trim()}\n`);
  return {
    apns,
    fcm,
    env: {
      HERALD_APNS_KEY_FILE: keyFile,
      HERALD_APNS_KEY_ID: apns.keyId,
      HERALD_APNS_TEAM_ID: apns.teamId,
      HERALD_APNS_TOPIC: apns.topic,
      HERALD_APNS_URL: apns.url,
      HERALD_FCM_SERVICE_ACCOUNT: accountFile,
      HERALD_FCM_URL: fcm.url,
      HERALD_CA_FILE: caFile,
    },
    async close() {
      await Promise.all([apns.close(), fcm.close()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A random APNs device token (32 bytes, hex) and a plausible FCM registration token. */
export function apnsToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('hex');
}

export function fcmToken(): string {
  return `f${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url')}:APA91b${Buffer.from(crypto.getRandomValues(new Uint8Array(60))).toString('base64url')}`;
}
