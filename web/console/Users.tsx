import { useEffect, useState } from 'preact/hooks';
import type { Api, Device, TestPushAnswer, User } from './api.ts';
import { time } from './format.ts';

interface Props {
  api: Api;
  onError: (error: unknown) => void;
  say: (message: string) => void;
}

/** Users with search, and the devices of the one chosen. */
export function Users({ api, onError, say }: Props) {
  const [search, setSearch] = useState('');
  const [users, setUsers] = useState<User[] | undefined>();
  const [next, setNext] = useState<string | null>(null);
  const [chosen, setChosen] = useState<User | undefined>();

  const find = async (event?: Event, after?: string) => {
    event?.preventDefault();
    try {
      const page = await api.users(search.trim(), after);
      setUsers(after ? [...(users ?? []), ...page.users] : page.users);
      setNext(page.next);
      if (!after) setChosen(undefined);
    } catch (error) {
      onError(error);
    }
  };

  return (
    <section aria-labelledby="users-title">
      <h2 id="users-title">Users</h2>
      <form class="search" role="search" onSubmit={(event) => void find(event)}>
        <label for="user-search">Search users</label>
        <input
          id="user-search"
          type="search"
          value={search}
          placeholder="e-mail, name or nick"
          onInput={(event) => setSearch((event.target as HTMLInputElement).value)}
        />
        <button type="submit">Search</button>
      </form>
      {users && users.length === 0 && <p>No user matches “{search}”.</p>}
      {users && users.length > 0 && (
        <table class="grid" aria-label="Users found">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">E-mail</th>
              <th scope="col">Nick</th>
              <th scope="col">Unread</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {users.map((user) => (
              <tr key={user.userid} aria-current={chosen?.userid === user.userid ? 'true' : undefined}>
                <td>{user.name}</td>
                <td>{user.email}</td>
                <td>{user.nick}</td>
                <td>{user.unread}</td>
                <td>{time(user.created_at)}</td>
                <td>
                  <button type="button" aria-label={`Devices of ${user.name}`} onClick={() => setChosen(user)}>
                    Devices
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && (
        <button type="button" onClick={() => void find(undefined, next)}>
          More users
        </button>
      )}
      {chosen && <Devices key={chosen.userid} api={api} user={chosen} onError={onError} say={say} />}
    </section>
  );
}

/** How the console words a provider's answer. */
export function describeAnswer(answer: TestPushAnswer): string {
  const { outcome } = answer;
  const why = outcome.kind === 'delivered' ? outcome.detail : outcome.reason;
  return `${answer.provider}: ${outcome.kind}${why ? ` (${why})` : ''}`;
}

function pushState(device: Device): string {
  if (!device.push) return 'no push token';
  if (device.push.enabled) return `${device.push.provider}, enabled`;
  return `${device.push.provider}, disabled ${time(device.push.disabledat)}: ${device.push.disabledreason ?? 'no reason given'}`;
}

function Devices({ api, user, onError, say }: Props & { user: User }) {
  const [devices, setDevices] = useState<Device[] | undefined>();
  const [answers, setAnswers] = useState<Record<string, string>>({});
  const [confirming, setConfirming] = useState<string | undefined>();
  const [busy, setBusy] = useState<string | undefined>();

  const load = async () => {
    try {
      setDevices((await api.devices(user.userid)).devices);
    } catch (error) {
      onError(error);
    }
  };
  useEffect(() => void load(), [user.userid]);

  const testPush = async (station: string) => {
    setBusy(station);
    try {
      const answer = describeAnswer(await api.testPush(user.userid, station));
      setAnswers((all) => ({ ...all, [station]: answer }));
      say(`Test push to ${station.slice(0, 8)}…: ${answer}`);
    } catch (error) {
      onError(error);
    } finally {
      setBusy(undefined);
    }
  };

  const remove = async (station: string) => {
    if (confirming !== station) return setConfirming(station);
    setConfirming(undefined);
    setBusy(station);
    try {
      await api.removeDevice(user.userid, station);
      say(`Removed device ${station.slice(0, 8)}… of ${user.name}`);
      await load();
    } catch (error) {
      onError(error);
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <section aria-labelledby="devices-title" class="devices">
      <h3 id="devices-title">
        Devices of {user.name} <span class="muted">({user.email})</span>
      </h3>
      {devices === undefined && <p aria-busy="true">Reading the devices…</p>}
      {devices && devices.length === 0 && <p>{user.name} has no devices.</p>}
      {devices && devices.length > 0 && (
        <table class="grid" aria-label={`Devices of ${user.name}`}>
          <thead>
            <tr>
              <th scope="col">Station</th>
              <th scope="col">Platform</th>
              <th scope="col">Push</th>
              <th scope="col">Last seen</th>
              <th scope="col">Acked seq</th>
              <th scope="col">Delivered seq</th>
              <th scope="col">Actions</th>
              <th scope="col">Provider’s answer</th>
            </tr>
          </thead>
          <tbody>
            {devices.map((device) => (
              <tr key={device.station} data-station={device.station}>
                <td class="mono">{device.station}</td>
                <td>{device.platform}</td>
                <td class={device.push && !device.push.enabled ? 'warn' : undefined}>{pushState(device)}</td>
                <td>{time(device.lastseen)}</td>
                <td>{device.ackedseq}</td>
                <td>{device.deliveredseq}</td>
                <td class="actions">
                  <button
                    type="button"
                    disabled={!device.push || busy !== undefined}
                    title={device.push ? undefined : 'This device has no push token'}
                    onClick={() => void testPush(device.station)}
                  >
                    Send test push
                  </button>
                  <button type="button" class="danger" disabled={busy !== undefined} onClick={() => void remove(device.station)}>
                    {confirming === device.station ? 'Confirm removal' : 'Remove'}
                  </button>
                </td>
                <td data-testid="answer">{answers[device.station] ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
