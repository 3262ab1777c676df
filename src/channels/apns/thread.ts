import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import { pushThreadBody, ThreadedPushChannel } from '../push-thread/threaded-channel.ts';

/**
 * The APNs channel run in `threads` worker threads (HERALD_APNS_THREADS), each with a
 * connection of its own; the HTTP/2 work is about three quarters of the CPU time an APNs
 * push costs Herald. Resolves once every thread's channel is ready.
 */
export function startApnsThreads(config: Config, threads: number, log?: Logger): Promise<ThreadedPushChannel> {
  return ThreadedPushChannel.start({ provider: 'apns', body: pushThreadBody(import.meta.url, 'push-thread-body'), config, threads, log });
}
