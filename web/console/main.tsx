import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Api, ApiError, type TailEvent } from './api.ts';
import { Overview } from './Overview.tsx';
import { SignIn } from './SignIn.tsx';
import { Tail, TAIL_LENGTH } from './Tail.tsx';
import { Users } from './Users.tsx';

const TOKEN_KEY = 'herald-console-token';
const SECTIONS = ['Overview', 'Users', 'Live tail'] as const;
type Section = (typeof SECTIONS)[number];
/** After the tail's stream ends (a node restart, say), it is opened again this much later. */
const TAIL_RETRY_MS = 3000;

function Console() {
  const [api, setApi] = useState<Api | undefined>(() => {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? new Api(token) : undefined;
  });
  const [refusal, setRefusal] = useState<string | undefined>();
  const [section, setSection] = useState<Section>('Overview');
  const [toasts, setToasts] = useState<Array<{ id: number; text: string }>>([]);
  const [events, setEvents] = useState<TailEvent[]>([]);
  const [tailState, setTailState] = useState('Connecting…');

  const say = (text: string) => {
    const id = Date.now() + Math.random();
    setToasts((all) => [...all.slice(-3), { id, text }]);
    setTimeout(() => setToasts((all) => all.filter((toast) => toast.id !== id)), 8000);
  };

  const signOut = (message?: string) => {
    sessionStorage.removeItem(TOKEN_KEY);
    setApi(undefined);
    setRefusal(message);
  };

  /** A refused token returns to sign-in, saying why; anything else is a toast. */
  const onError = (error: unknown) => {
    if (error instanceof ApiError && error.refusesToken) {
      signOut(`Herald refused the token (${error.status}): ${error.message}`);
    } else {
      say(error instanceof Error ? error.message : String(error));
    }
  };

  const signIn = async (token: string) => {
    const candidate = new Api(token);
    try {
      await candidate.stats();
    } catch (error) {
      const why = error instanceof ApiError ? `Herald refused the token (${error.status}): ${error.message}` : String(error);
      setRefusal(why);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    setRefusal(undefined);
    setEvents([]);
    setApi(candidate);
  };

  // The tail runs while signed in, so it gathers notifications whichever section is shown.
  useEffect(() => {
    if (!api) return;
    const abort = new AbortController();
    let retry: ReturnType<typeof setTimeout> | undefined;
    const open = () => {
      setTailState('Connected: notifications appear as they are committed');
      api
        .tail((event) => setEvents((all) => [event, ...all].slice(0, TAIL_LENGTH)), abort.signal)
        .then(
          () => setTailState('The stream ended; reconnecting…'),
          (error: unknown) => {
            if (abort.signal.aborted) return;
            if (error instanceof ApiError && error.refusesToken) return onError(error);
            setTailState(`Not connected (${error instanceof Error ? error.message : String(error)}); retrying…`);
          },
        )
        .finally(() => {
          if (!abort.signal.aborted) retry = setTimeout(open, TAIL_RETRY_MS);
        });
    };
    open();
    return () => {
      abort.abort();
      clearTimeout(retry);
    };
  }, [api]);

  if (!api) return <SignIn message={refusal} onSignIn={signIn} />;
  return (
    <>
      <header class="top">
        <h1>Herald console</h1>
        <nav aria-label="Sections">
          {SECTIONS.map((name) => (
            <button key={name} type="button" aria-current={section === name ? 'page' : undefined} onClick={() => setSection(name)}>
              {name}
            </button>
          ))}
        </nav>
        <button type="button" class="sign-out" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main>
        {section === 'Overview' && <Overview api={api} onError={onError} />}
        {section === 'Users' && <Users api={api} onError={onError} say={say} />}
        {section === 'Live tail' && <Tail events={events} state={tailState} />}
      </main>
      <div class="toasts" role="status" aria-live="polite">
        {toasts.map((toast) => (
          <p key={toast.id}>{toast.text}</p>
        ))}
      </div>
    </>
  );
}

render(<Console />, document.getElementById('root')!);
