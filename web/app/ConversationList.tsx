import type { Conversation } from '../shared/ozeki.ts';
import { conversationHref } from './route.ts';

interface Props {
  conversations: Conversation[] | undefined;
  problem: string | undefined;
  selfId: string;
  openId: string | null;
}

/** The name to show: the conversation's own, or the other participants'. */
export function conversationName(conversation: Conversation, selfId: string): string {
  if (conversation.displayname) return conversation.displayname;
  const others = conversation.participants.filter((p) => p.userid !== selfId).map((p) => p.username);
  return others.join(', ') || 'Only you';
}

export function ConversationList({ conversations, problem, selfId, openId }: Props) {
  return (
    <nav class="conversations" aria-label="Conversations">
      <h2>Conversations</h2>
      {problem && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
      {!conversations && !problem && <p class="empty">Loading…</p>}
      {conversations?.length === 0 && <p class="empty">No conversations yet.</p>}
      <ul>
        {conversations?.map((c) => {
          const name = conversationName(c, selfId);
          const muted = c.mutedby.includes(selfId);
          return (
            <li key={c.id}>
              <a
                href={conversationHref(c.id)}
                aria-current={c.id === openId ? 'page' : undefined}
                aria-label={`${name}${c.unread > 0 ? `, ${c.unread} unread` : ''}${muted ? ', muted' : ''}`}
              >
                <span class="name">{name}</span>
                {muted && <span class="muted">muted</span>}
                {c.unread > 0 && <span class="unread">{c.unread}</span>}
              </a>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}
