// The entry of a push thread (see threaded-channel.ts) when Herald runs from its TypeScript
// sources (tests, tsx): a worker loads its modules on its own, so it registers tsx as the
// main thread did, then loads the provider's body named in its workerData. The compiled
// build starts the body's .js file directly.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.body);
