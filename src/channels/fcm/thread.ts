import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import { pushThreadBody, ThreadedPushChannel } from '../push-thread/threaded-channel.ts';

/**
 * The FCM channel run in `threads` worker threads (HERALD_FCM_THREADS), each with a
 * connection and an access token of its own. Resolves once every thread's channel is ready.
 */
export function startFcmThreads(config: Config, threads: number, log?: Logger): Promise<ThreadedPushChannel> {
  return ThreadedPushChannel.start({ provider: 'fcm', body: pushThreadBody(import.meta.url, 'push-thread-body'), config, threads, log });
}
