import { AsyncResource } from 'node:async_hooks';

/**
 * node:http2 binds one function to an AsyncResource for every request it starts
 * (`reqAsync.bind(requestOnConnect…)` in `ClientHttp2Session.request`). On Node 20–24 each
 * such bound function also gets the deprecated `asyncResource` accessor (DEP0172), built
 * from two `util.deprecate` wrappers, each reshaping a function's prototype: about a fifth
 * of the APNs thread's CPU time per push (push-only bench runs: Herald's whole-process CPU
 * per push 62–65 µs → 45–52 µs). Node's main line has dropped the accessor
 * (nodejs/node#58618; the cost is nodejs/node#58218).
 *
 * installLeanAsyncBind() gives AsyncResource#bind that behaviour in the thread that calls
 * it: the bound function still runs `fn` in the resource's async scope, with the caller's
 * `this` unless a `thisArg` was given, and has `fn`'s length; only the deprecated
 * accessor is gone. It is meant for a push thread, where nothing but the channel runs,
 * and it changes nothing on a Node whose bind no longer adds the accessor.
 *
 * HERALD_NO_LEAN_BIND=1 leaves Node's bind as it is. Returns whether bind was replaced.
 */
export function installLeanAsyncBind(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.HERALD_NO_LEAN_BIND === '1') return false;
  const probe = new AsyncResource('HeraldBindProbe').bind(() => {});
  if (!Object.prototype.hasOwnProperty.call(probe, 'asyncResource')) return false;
  AsyncResource.prototype.bind = function bind<Func extends (...args: any[]) => unknown>(
    this: AsyncResource,
    fn: Func,
    thisArg?: unknown,
  ): Func {
    return leanBind(this, fn, thisArg);
  };
  return true;
}

/** `resource.bind(fn, thisArg)` without the deprecated accessor. */
export function leanBind<Func extends (...args: any[]) => unknown>(resource: AsyncResource, fn: Func, thisArg?: unknown): Func {
  if (typeof fn !== 'function') {
    throw Object.assign(new TypeError(`The "fn" argument must be of type function. Received ${typeof fn}`), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
  }
  const bound =
    thisArg === undefined
      ? function (this: unknown, ...args: unknown[]) {
          return resource.runInAsyncScope(fn, this, ...args);
        }
      : (resource.runInAsyncScope.bind(resource, fn, thisArg) as (...args: unknown[]) => unknown);
  Object.defineProperty(bound, 'length', { configurable: true, enumerable: false, writable: false, value: fn.length });
  return bound as Func;
}
