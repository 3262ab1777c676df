/**
 * A tiny key-value store on IndexedDB, shared by the page and the service worker (a worker
 * has no localStorage): the page keeps there what the worker needs to renew its push
 * subscription on its own (the station, the VAPID key).
 */
const DATABASE = 'herald';
const STORE = 'kv';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB cannot be opened'));
  });
}

async function run<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const request = work(db.transaction(STORE, mode).objectStore(STORE));
      request.onsuccess = () => resolve(request.result as T);
      request.onerror = () => reject(request.error ?? new Error('IndexedDB request failed'));
    });
  } finally {
    db.close();
  }
}

export function kvGet<T>(key: string): Promise<T | undefined> {
  return run<T | undefined>('readonly', (store) => store.get(key));
}

export async function kvSet(key: string, value: unknown): Promise<void> {
  await run('readwrite', (store) => store.put(value, key));
}

export async function kvDelete(key: string): Promise<void> {
  await run('readwrite', (store) => store.delete(key));
}

/** What the worker needs to renew a push subscription without the page. */
export interface PushRenewal {
  station: string;
  vapidPublicKey: string;
}

export const PUSH_RENEWAL_KEY = 'push-renewal';
