import { useEffect, useState } from 'preact/hooks';
import { fromOzekiTime, ozekiTime, type Conversation, type Ozeki, type Preferences, type PreferencesChange } from '../shared/ozeki.ts';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const DAY_NAMES: Record<string, string> = { mon: 'Mon', tue: 'Tue', wed: 'Wed', thu: 'Thu', fri: 'Fri', sat: 'Sat', sun: 'Sun' };

/** The value of a datetime-local input for a moment, in the browser's time zone. */
function localInputValue(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/**
 * The alert preferences (the server's `chatpreferences`): do-not-disturb until a time, quiet
 * hours, and the conversations muted until a time. Silenced notifications still count.
 */
export function PreferencesPanel({ ozeki, conversations }: { ozeki: Ozeki; conversations: Conversation[] }) {
  const [preferences, setPreferences] = useState<Preferences | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [saved, setSaved] = useState<string | undefined>(undefined);
  const [dndUntil, setDndUntil] = useState(localInputValue(new Date(Date.now() + 3600_000)));
  const [quietOn, setQuietOn] = useState(false);
  const [start, setStart] = useState('22:00');
  const [end, setEnd] = useState('07:00');
  const [timezone, setTimezone] = useState(Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
  const [days, setDays] = useState<string[]>(DAYS);

  const show = (next: Preferences) => {
    setPreferences(next);
    setQuietOn(next.quiethours !== null);
    if (next.quiethours) {
      setStart(next.quiethours.start);
      setEnd(next.quiethours.end);
      setTimezone(next.quiethours.timezone);
      setDays(next.quiethours.days ?? DAYS);
    }
  };

  useEffect(() => {
    ozeki.preferences().then(show, (failure: Error) => setError(failure.message));
  }, []);

  const change = async (what: PreferencesChange, done: string) => {
    setError(undefined);
    setSaved(undefined);
    try {
      show(await ozeki.setPreferences(what));
      setSaved(done);
    } catch (failure) {
      setError((failure as Error).message);
    }
  };

  const saveDnd = (event: Event) => {
    event.preventDefault();
    const until = new Date(dndUntil);
    if (Number.isNaN(until.getTime())) return setError('Choose the date and time do-not-disturb ends.');
    void change({ dnduntil: ozekiTime(until) }, 'Do-not-disturb is on.');
  };
  const saveQuiet = (event: Event) => {
    event.preventDefault();
    void change({ quiethours: quietOn ? { start, end, timezone, days } : null }, quietOn ? 'Quiet hours saved.' : 'Quiet hours are off.');
  };

  const nameOf = (id: string) => conversations.find((c) => c.id === id)?.displayname || id;
  if (!preferences) return <section class="preferences">{error ? <p class="error">{error}</p> : <p>Loading…</p>}</section>;

  return (
    <section class="preferences" aria-labelledby="preferences-title">
      <h2 id="preferences-title">Alert preferences</h2>
      <p class="hint">
        While silenced, notifications still arrive and count; they just do not alert.
        {preferences.silentnow && <strong> Alerts are silenced right now.</strong>}
      </p>
      <div role="status" class="saved">
        {saved}
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}

      <form onSubmit={saveDnd}>
        <h3>Do not disturb</h3>
        {preferences.dnduntil ? (
          <p>
            On until {fromOzekiTime(preferences.dnduntil).toLocaleString()}.{' '}
            <button type="button" onClick={() => change({ dnduntil: null }, 'Do-not-disturb is off.')}>
              Turn off
            </button>
          </p>
        ) : (
          <p>Off.</p>
        )}
        <label for="dnd-until">Silence everything until</label>
        <input id="dnd-until" type="datetime-local" value={dndUntil} onInput={(e) => setDndUntil(e.currentTarget.value)} />
        <button type="submit">Turn on</button>
      </form>

      <form onSubmit={saveQuiet}>
        <h3>Quiet hours</h3>
        <label class="inline">
          <input type="checkbox" checked={quietOn} onChange={(e) => setQuietOn(e.currentTarget.checked)} /> Every week, silence alerts
        </label>
        <fieldset disabled={!quietOn}>
          <legend>When</legend>
          <label for="quiet-start">From</label>
          <input id="quiet-start" type="time" value={start} onInput={(e) => setStart(e.currentTarget.value)} />
          <label for="quiet-end">to</label>
          <input id="quiet-end" type="time" value={end} onInput={(e) => setEnd(e.currentTarget.value)} />
          <label for="quiet-zone">Time zone</label>
          <input id="quiet-zone" type="text" value={timezone} onInput={(e) => setTimezone(e.currentTarget.value)} />
          <div class="days" role="group" aria-label="Starting on">
            {DAYS.map((day) => (
              <label class="inline" key={day}>
                <input
                  type="checkbox"
                  checked={days.includes(day)}
                  onChange={(e) =>
                    setDays(e.currentTarget.checked ? DAYS.filter((d) => d === day || days.includes(d)) : days.filter((d) => d !== day))
                  }
                />{' '}
                {DAY_NAMES[day]}
              </label>
            ))}
          </div>
        </fieldset>
        <button type="submit">Save quiet hours</button>
      </form>

      <h3>Muted conversations</h3>
      {Object.keys(preferences.conversationmutes).length === 0 ? (
        <p>None. Open a conversation to mute it for a while.</p>
      ) : (
        <ul>
          {Object.entries(preferences.conversationmutes).map(([id, until]) => (
            <li key={id}>
              {nameOf(id)} until {fromOzekiTime(until).toLocaleString()}{' '}
              <button
                type="button"
                aria-label={`Unmute ${nameOf(id)}`}
                onClick={() => change({ conversationmutes: { [id]: null } }, 'Unmuted.')}
              >
                Unmute
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
