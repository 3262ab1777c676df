import { useState } from 'preact/hooks';
import type { Ozeki } from '../shared/ozeki.ts';
import { userIdOfEmail } from '../shared/md5.ts';
import type { Session } from './session.ts';

interface Props {
  ozeki: Ozeki;
  /** Why the user is here again (the device was removed, …). */
  notice?: string;
  onSignedIn(session: Session): void;
}

/** E-mail and API key → chatlogin with this browser's station. */
export function SignIn({ ozeki, notice, onSignedIn }: Props) {
  const [email, setEmail] = useState('');
  const [apikey, setApikey] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(undefined);
    if (!email.includes('@')) return setError('Enter the e-mail address of your Herald account.');
    if (!apikey.trim()) return setError('Enter your API key.');
    setBusy(true);
    try {
      const login = await ozeki.login(apikey.trim());
      // The user id is the MD5 of the e-mail: a key of another account is not taken.
      if (login.userid !== userIdOfEmail(email)) {
        setError('This API key belongs to another e-mail address.');
        return;
      }
      onSignedIn({ email: email.trim(), userid: login.userid, name: login.fullname || email.trim(), vapidPublicKey: login.vapidpublickey });
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="sign-in">
      <h1>Herald</h1>
      <p class="lead">Sign in to see who wrote to you.</p>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit} noValidate>
        <label for="email">E-mail</label>
        <input id="email" type="email" autocomplete="username" value={email} onInput={(e) => setEmail(e.currentTarget.value)} required />
        <label for="apikey">API key</label>
        <input
          id="apikey"
          type="password"
          autocomplete="current-password"
          value={apikey}
          onInput={(e) => setApikey(e.currentTarget.value)}
          required
        />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
