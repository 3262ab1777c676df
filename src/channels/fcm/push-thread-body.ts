import { servePushThread } from '../push-thread/thread-body.ts';
import { FcmChannel } from './channel.ts';

/* The worker side of startFcmThreads(): an FcmChannel, fed in batches. */

await servePushThread((config, log) => FcmChannel.fromConfig(config, log, { deliveredDetail: false }));
