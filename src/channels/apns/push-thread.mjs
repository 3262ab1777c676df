// The entry of a push channel's worker thread (see thread.ts): the sources are TypeScript,
// run through tsx as in the main thread, and a worker loads its modules on its own.
import { register } from 'tsx/esm/api';

register();
await import('./push-thread-body.ts');
