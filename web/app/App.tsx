import { useMemo, useState } from 'preact/hooks';
import { Ozeki } from '../shared/ozeki.ts';
import { forgetSession, savedSession, saveSession, station, type Session } from './session.ts';
import { SignIn } from './SignIn.tsx';
import { Inbox } from './Inbox.tsx';
import { disablePush } from './push.ts';
import { showBadge } from './badge.ts';

/** Signed out: the sign-in form. Signed in: the inbox. */
export function App() {
  const ozeki = useMemo(() => new Ozeki(station()), []);
  const [session, setSession] = useState<Session | undefined>(savedSession);
  const [notice, setNotice] = useState<string | undefined>(undefined);

  const signedIn = (next: Session) => {
    saveSession(next);
    setNotice(undefined);
    setSession(next);
  };
  const signOut = async (reason?: string) => {
    if (!reason) await disablePush(ozeki);
    forgetSession();
    showBadge(0);
    setNotice(reason);
    setSession(undefined);
  };

  if (!session) return <SignIn ozeki={ozeki} notice={notice} onSignedIn={signedIn} />;
  return <Inbox key={session.userid} ozeki={ozeki} session={session} onSignOut={signOut} />;
}
