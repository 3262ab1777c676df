import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachStore } from './helpers/stores.ts';
import { snapshot } from './helpers/snapshot.ts';
import { metricsText, startTestServer, type TestServer } from './helpers/server.ts';
import { MATRIX_APPS, iosPusher, specExample, startMatrixScene, type MatrixScene } from './helpers/matrix.ts';
import { loadConfig, ConfigError } from '../src/config.ts';

describeEachStore('what the Matrix push gateway refuses', (kind) => {
  let scene: MatrixScene;

  beforeAll(async () => {
    scene = await startMatrixScene(kind);
  });
  afterAll(async () => scene?.stop());

  const device = () => ({ app_id: MATRIX_APPS.ios, pushkey: iosPusher().pushkey });
  const withNotification = (fields: Record<string, unknown>) => {
    const body = specExample(device());
    Object.assign(body.notification as object, fields);
    return body;
  };

  const cases: Array<[string, () => unknown, string]> = [
    ['a body that is not JSON', () => '{"notification": {', 'M_NOT_JSON'],
    ['a body that is a JSON array', () => [specExample(device())], 'M_BAD_JSON'],
    ['no notification', () => ({ devices: [device()] }), 'M_MISSING_PARAM'],
    ['a notification that is a string', () => ({ notification: 'hello' }), 'M_BAD_JSON'],
    ['no devices', () => ({ notification: { event_id: '$e', room_id: '!r:example.org' } }), 'M_MISSING_PARAM'],
    ['devices that are not a list', () => withNotification({ devices: device() }), 'M_BAD_JSON'],
    ['an empty list of devices', () => withNotification({ devices: [] }), 'M_BAD_JSON'],
    ['more than 100 devices', () => withNotification({ devices: Array.from({ length: 101 }, device) }), 'M_BAD_JSON'],
    ['a device without app_id', () => withNotification({ devices: [device(), { pushkey: iosPusher().pushkey }] }), 'M_MISSING_PARAM'],
    ['a device without pushkey', () => withNotification({ devices: [device(), { app_id: MATRIX_APPS.ios }] }), 'M_MISSING_PARAM'],
    ['a pushkey that is a number', () => withNotification({ devices: [{ app_id: MATRIX_APPS.ios, pushkey: 12 }] }), 'M_BAD_JSON'],
    [
      'a pushkey longer than 4096 characters',
      () => withNotification({ devices: [{ app_id: MATRIX_APPS.android, pushkey: 'a'.repeat(4097) }] }),
      'M_BAD_JSON',
    ],
    ['prio other than high or low', () => withNotification({ prio: 'urgent' }), 'M_BAD_JSON'],
    ['a negative unread count', () => withNotification({ counts: { unread: -1 } }), 'M_BAD_JSON'],
    ['an event without its room', () => withNotification({ room_id: undefined }), 'M_MISSING_PARAM'],
    ['a room name that is not a string', () => withNotification({ room_name: 7 }), 'M_BAD_JSON'],
  ];

  for (const [what, body, errcode] of cases) {
    it(`${what} is refused with 400 ${errcode}, and nothing changes`, async () => {
      const before = await snapshot(scene.server.app.parts.store);
      const answer = await scene.notify(body());
      expect(answer.status).toBe(400);
      expect(answer.json).toEqual({ errcode, error: expect.any(String) });
      expect(await snapshot(scene.server.app.parts.store)).toEqual(before);
      expect(scene.doubles.apns.pushes).toEqual([]);
    });
  }

  it('another method is 405 and another path 404, both M_UNRECOGNIZED; requests are counted as api "matrix"', async () => {
    const get = await fetch(`${scene.server.http}/_matrix/push/v1/notify`);
    expect(get.status).toBe(405);
    expect(await get.json()).toMatchObject({ errcode: 'M_UNRECOGNIZED' });
    const other = await fetch(`${scene.server.http}/_matrix/push/v1/elsewhere`, { method: 'POST', body: '{}' });
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ errcode: 'M_UNRECOGNIZED' });
    expect(await metricsText(scene.server)).toMatch(
      /herald_http_requests_total\{api="matrix",route="\/_matrix\/push\/v1\/notify",status="405"\} 1/,
    );
  });
});

describeEachStore('a node without HERALD_MATRIX_APPS', (kind) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(kind);
  });
  afterAll(async () => server?.stop());

  it('answers notify with 404 M_UNRECOGNIZED, so the homeserver keeps its pushers and retries later', async () => {
    const before = await snapshot(server.app.parts.store);
    const response = await fetch(`${server.http}/_matrix/push/v1/notify`, {
      method: 'POST',
      body: JSON.stringify(specExample({ app_id: MATRIX_APPS.ios, pushkey: iosPusher().pushkey })),
    });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ errcode: 'M_UNRECOGNIZED', error: expect.stringContaining('HERALD_MATRIX_APPS') });
    expect(await snapshot(server.app.parts.store)).toEqual(before);
  });
});

it('HERALD_MATRIX_APPS is checked at start, and a bad value names the variable', () => {
  const apps = loadConfig({ HERALD_MATRIX_APPS: ' im.example.web=webpush , ' }).matrixApps;
  expect([...apps]).toEqual([['im.example.web', 'webpush']]);
  expect(loadConfig({}).matrixApps.size).toBe(0);
  for (const [value, says] of [
    ['im.example.ios=gcm', 'must be one of apns, fcm, webpush'],
    ['im.example.ios', 'app_id=provider'],
    ['im.example.ios=apns', 'APNs is not configured'],
    ['im.example.android=fcm', 'FCM is not configured'],
    ['a=webpush,a=webpush', 'twice'],
  ]) {
    expect(() => loadConfig({ HERALD_MATRIX_APPS: value })).toThrow(ConfigError);
    expect(() => loadConfig({ HERALD_MATRIX_APPS: value })).toThrow(/^HERALD_MATRIX_APPS/);
    expect(() => loadConfig({ HERALD_MATRIX_APPS: value })).toThrow(says);
  }
});
