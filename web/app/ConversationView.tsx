import { useEffect, useState } from 'preact/hooks';
import { fromOzekiTime, ozekiTime, type Conversation, type Ozeki } from '../shared/ozeki.ts';
import { conversationName } from './ConversationList.tsx';

interface Props {
  conversation: Conversation;
  ozeki: Ozeki;
  selfId: string;
  markRead(conversationid: string): Promise<void>;
}

const MUTE_FOR = [
  { label: '1 hour', ms: 3600_000 },
  { label: '8 hours', ms: 8 * 3600_000 },
  { label: '1 week', ms: 7 * 24 * 3600_000 },
];

/**
 * One conversation: who is in it and how many are unread. Opening it tells Herald the user
 * has read it. Contents are end-to-end encrypted: the chat app shows them, Herald does not.
 */
export function ConversationView({ conversation, ozeki, selfId, markRead }: Props) {
  const [readError, setReadError] = useState<string | undefined>(undefined);
  const [mutedUntil, setMutedUntil] = useState<string | null | undefined>(undefined);
  const [muteError, setMuteError] = useState<string | undefined>(undefined);
  const name = conversationName(conversation, selfId);

  // Opening it is reading it; what arrives while it stays open the live inbox marks read.
  useEffect(() => {
    setReadError(undefined);
    if (conversation.unread > 0) markRead(conversation.id).catch((error: Error) => setReadError(error.message));
  }, [conversation.id]);

  useEffect(() => {
    setMutedUntil(undefined);
    ozeki.preferences().then(
      (preferences) => setMutedUntil(preferences.conversationmutes[conversation.id] ?? null),
      (error: Error) => setMuteError(error.message),
    );
  }, [conversation.id]);

  const mute = async (untilMs: number | null) => {
    setMuteError(undefined);
    try {
      const until = untilMs === null ? null : ozekiTime(new Date(untilMs));
      const preferences = await ozeki.setPreferences({ conversationmutes: { [conversation.id]: until } });
      setMutedUntil(preferences.conversationmutes[conversation.id] ?? null);
    } catch (error) {
      setMuteError((error as Error).message);
    }
  };

  return (
    <article class="conversation" aria-labelledby="conversation-title">
      <h2 id="conversation-title">{name}</h2>
      <p class="unread-line">{conversation.unread > 0 ? `${conversation.unread} unread` : 'All read'}</p>
      {readError && (
        <p class="error" role="alert">
          Could not mark it read: {readError}
        </p>
      )}
      <h3>Participants</h3>
      <ul class="participants">
        {conversation.participants.map((p) => (
          <li key={p.userid}>{p.userid === selfId ? `${p.username} (you)` : p.username}</li>
        ))}
      </ul>
      <p class="hint">Messages are end-to-end encrypted: Herald tells you who wrote and how many; read them in your chat app.</p>
      <h3>Alerts</h3>
      {mutedUntil === undefined && !muteError && <p>Loading…</p>}
      {mutedUntil && (
        <p>
          Muted until <time dateTime={fromOzekiTime(mutedUntil).toISOString()}>{fromOzekiTime(mutedUntil).toLocaleString()}</time>.{' '}
          <button type="button" onClick={() => mute(null)}>
            Unmute
          </button>
        </p>
      )}
      {mutedUntil === null && (
        <p class="mute-buttons">
          Mute for{' '}
          {MUTE_FOR.map((choice) => (
            <button type="button" key={choice.label} onClick={() => mute(Date.now() + choice.ms)}>
              {choice.label}
            </button>
          ))}
        </p>
      )}
      {muteError && (
        <p class="error" role="alert">
          {muteError}
        </p>
      )}
    </article>
  );
}
