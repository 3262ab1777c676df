import { OzekiClient } from '../../client/ozeki.ts';
import { startPushDoubles, type PushDoubles } from '../mocks/push-env.ts';
import { addUser, befriend, newStation, startTestServer, type TestServer, type TestUser } from './server.ts';
import type { StoreKind } from './stores.ts';

export interface PushScene {
  doubles: PushDoubles;
  server: TestServer;
  alice: TestUser;
  /** Bob's first station is an iOS device without a token yet. */
  bob: TestUser;
  stop(): Promise<void>;
}

/** The APNs and FCM doubles, a node configured for them (and `env`), and Alice and Bob as friends. */
export async function startPushScene(kind: StoreKind, env: Record<string, string> = {}): Promise<PushScene> {
  const doubles = await startPushDoubles();
  const server = await startTestServer(kind, { ...doubles.env, ...env });
  const alice = await addUser(server, 'Alice');
  const bob = await addUser(server, 'Bob', 'ios');
  await befriend(server, alice, bob);
  return {
    doubles,
    server,
    alice,
    bob,
    async stop() {
      await server.stop();
      await doubles.close();
    },
  };
}

/** Logs a new device of the user in and registers its push token, as a phone app does. */
export async function addPushDevice(server: TestServer, user: TestUser, platform: 'ios' | 'mac' | 'android', pushtoken: string) {
  const device = new OzekiClient(server.http, newStation());
  await device.login(user.apikey, platform);
  await device.ok('chatdevice', { action: 'register', platform, pushtoken });
  return device;
}
