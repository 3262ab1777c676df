import { useEffect, useState } from 'preact/hooks';

/** Where the app is: `#/c/<conversation id>`, `#/preferences`, or the list alone. */
export type Route = { page: 'list' } | { page: 'conversation'; id: string } | { page: 'preferences' };

export function parseRoute(hash: string): Route {
  const conversation = /^#\/c\/([^/]+)$/.exec(hash);
  if (conversation) return { page: 'conversation', id: decodeURIComponent(conversation[1]) };
  if (hash === '#/preferences') return { page: 'preferences' };
  return { page: 'list' };
}

export const conversationHref = (id: string) => `#/c/${encodeURIComponent(id)}`;

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
