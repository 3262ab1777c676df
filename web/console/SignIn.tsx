import { useState } from 'preact/hooks';

/** Asks for the admin token or a scoped token (kept in this tab's sessionStorage only). */
export function SignIn({ message, onSignIn }: { message?: string; onSignIn: (token: string) => Promise<void> }) {
  const [token, setToken] = useState('');
  const [checking, setChecking] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setChecking(true);
    try {
      await onSignIn(token.trim());
    } finally {
      setChecking(false);
    }
  };
  return (
    <main class="sign-in">
      <h1>Herald console</h1>
      <form onSubmit={(event) => void submit(event)}>
        <label for="token">Admin token or API token</label>
        <input
          id="token"
          type="password"
          autocomplete="off"
          required
          value={token}
          onInput={(event) => setToken((event.target as HTMLInputElement).value)}
          aria-describedby="token-help"
        />
        <p id="token-help" class="muted">
          The admin token, or a token with the scopes stats:read, users:read, feed:read (and devices:write to remove devices and send test
          pushes). It is kept in this tab only.
        </p>
        {message && (
          <p class="error" role="alert">
            {message}
          </p>
        )}
        <button type="submit" disabled={checking || token.trim() === ''}>
          {checking ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
