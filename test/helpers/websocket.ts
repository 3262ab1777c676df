import { WsReceiver, type CleanFrame, type NotificationFrame, type ReceiverOptions } from '../../client/ws-receiver.ts';
import type { TestServer } from './server.ts';

/** A receiver that keeps every notification and clean frame it got, in arrival order. */
export interface RecordingReceiver {
  receiver: WsReceiver;
  frames: Array<NotificationFrame | CleanFrame>;
}

/** Connects a device of a test server over ws:// (or wss:// trusting the test certificate) and waits for its replay to end. */
export async function connectDevice(
  server: TestServer,
  station: string,
  options: Partial<ReceiverOptions> & { secure?: boolean } = {},
): Promise<RecordingReceiver> {
  const { secure, ...rest } = options;
  const receiver = new WsReceiver({
    url: secure ? server.app.endpoints.wss : server.app.endpoints.ws,
    station,
    ca: server.ca,
    minBackoffMs: 20,
    maxBackoffMs: 200,
    ...rest,
  });
  const frames: Array<NotificationFrame | CleanFrame> = [];
  receiver.on('notification', (frame) => frames.push(frame));
  receiver.on('clean', (frame) => frames.push(frame));
  const synced = receiver.next('synced');
  receiver.start();
  await synced;
  return { receiver, frames };
}
