import { useEffect, useState } from 'preact/hooks';
import type { Ozeki } from '../shared/ozeki.ts';
import type { Session } from './session.ts';
import { useLiveInbox } from './live.ts';
import { conversationHref, useRoute } from './route.ts';
import { showBadge } from './badge.ts';
import { enablePush, pushSupported, registerWorker } from './push.ts';
import { ConversationList } from './ConversationList.tsx';
import { ConversationView } from './ConversationView.tsx';
import { PreferencesPanel } from './PreferencesPanel.tsx';
import { Toasts } from './Toasts.tsx';

interface Props {
  ozeki: Ozeki;
  session: Session;
  onSignOut(reason?: string): void;
}

const CONNECTION_TEXT = { connecting: 'Connecting…', live: 'Live', offline: 'Offline: reconnecting…' };

export function Inbox({ ozeki, session, onSignOut }: Props) {
  const route = useRoute();
  const openId = route.page === 'conversation' ? route.id : null;
  const inbox = useLiveInbox(session, ozeki, openId, (reason) => onSignOut(`Signed out: ${reason}`));
  const [pushState, setPushState] = useState<'off' | 'on' | 'working' | string>('off');

  useEffect(() => showBadge(inbox.badge), [inbox.badge]);

  // Signed in, the worker is registered (it shows Web Push notifications while no Herald tab is
  // open); with permission already given, subscribe at once, otherwise a click must ask for it.
  useEffect(() => {
    if (pushSupported() && Notification.permission === 'granted') turnOnPush();
    else registerWorker()?.catch((error: Error) => console.warn(`the service worker could not be registered: ${error.message}`));
  }, []);

  // The worker asks to open a conversation when its notification is clicked.
  useEffect(() => {
    if (!('serviceWorker' in navigator)) return;
    const onMessage = (event: MessageEvent<{ type?: string; conversationid?: string }>) => {
      if (event.data?.type === 'open' && event.data.conversationid) location.hash = conversationHref(event.data.conversationid);
    };
    navigator.serviceWorker.addEventListener('message', onMessage);
    return () => navigator.serviceWorker.removeEventListener('message', onMessage);
  }, []);

  function turnOnPush() {
    setPushState('working');
    enablePush(ozeki, session.vapidPublicKey).then(
      () => setPushState('on'),
      (error: Error) => setPushState(`Notifications are off: ${error.message}`),
    );
  }

  const open = openId ? inbox.conversations?.find((c) => c.id === openId) : undefined;
  return (
    <div class="inbox">
      <header class="top">
        <h1>
          Herald
          {inbox.badge > 0 && (
            <span class="badge" aria-label={`${inbox.badge} unread`}>
              {inbox.badge}
            </span>
          )}
        </h1>
        <span class={`connection ${inbox.connection}`} role="status">
          {CONNECTION_TEXT[inbox.connection]}
        </span>
        <span class="who">{session.name}</span>
        <nav>
          {pushSupported() && pushState !== 'on' && (
            <button type="button" onClick={turnOnPush} disabled={pushState === 'working'}>
              Enable notifications
            </button>
          )}
          <a href="#/preferences" aria-current={route.page === 'preferences' ? 'page' : undefined}>
            Alert preferences
          </a>
          <button type="button" onClick={() => onSignOut()}>
            Sign out
          </button>
        </nav>
      </header>
      {pushState !== 'off' && pushState !== 'on' && pushState !== 'working' && (
        <p class="error" role="alert">
          {pushState}
        </p>
      )}
      <div class="panes">
        <ConversationList conversations={inbox.conversations} problem={inbox.problem} selfId={session.userid} openId={openId} />
        <section class="detail" aria-label="Details">
          {route.page === 'preferences' && <PreferencesPanel ozeki={ozeki} conversations={inbox.conversations ?? []} />}
          {route.page === 'conversation' &&
            (open ? (
              <ConversationView conversation={open} ozeki={ozeki} selfId={session.userid} markRead={inbox.markRead} />
            ) : (
              <p class="empty">{inbox.conversations ? 'This conversation is not yours, or it is gone.' : 'Loading…'}</p>
            ))}
          {route.page === 'list' && <p class="empty">Choose a conversation to mark it read.</p>}
        </section>
      </div>
      <Toasts toasts={inbox.toasts} dismiss={inbox.dismiss} />
    </div>
  );
}
