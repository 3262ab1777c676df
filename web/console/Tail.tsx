import type { TailEvent } from './api.ts';
import { clock } from './format.ts';

/** The tail keeps this many notifications, newest first. */
export const TAIL_LENGTH = 200;

/** The live tail: notifications as they are committed on any node, newest first. */
export function Tail({ events, state }: { events: TailEvent[]; state: string }) {
  return (
    <section aria-labelledby="tail-title">
      <h2 id="tail-title">Live tail</h2>
      <p class="muted" role="status">
        {state} · the newest {TAIL_LENGTH} notifications are kept
      </p>
      {events.length === 0 ? (
        <p>No notification since the console opened.</p>
      ) : (
        <ol class="tail" aria-label="Notifications, newest first">
          {events.map((event) => (
            <li key={event.id} data-id={event.id}>
              <time dateTime={new Date(event.created).toISOString()}>{clock(event.created)}</time>
              <span class="type">{event.type}</span>
              <span class="title">{event.title}</span>
              <span class="muted">
                user {event.userid.slice(0, 8)}… · seq {event.seq} · badge {event.badge}
                {event.conversationid ? ` · ${event.conversationid}` : ''}
                {event.silent ? ' · silent' : ''}
              </span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
