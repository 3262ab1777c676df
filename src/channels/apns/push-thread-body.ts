import { servePushThread } from '../push-thread/thread-body.ts';
import { ApnsChannel } from './channel.ts';

/* The worker side of startApnsThreads(): an ApnsChannel, fed in batches. */

await servePushThread((config, log) => ApnsChannel.fromConfig(config, log));
