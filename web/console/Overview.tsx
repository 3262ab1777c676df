import { useEffect, useState } from 'preact/hooks';
import type { Api, Stats } from './api.ts';
import { Chart } from './Chart.tsx';
import { clock } from './format.ts';

/** How often the numbers are read again. */
export const REFRESH_MS = 5000;

/** Live connections, the outbox backlog and the last hour's activity, read every 5 s. */
export function Overview({ api, onError }: { api: Api; onError: (error: unknown) => void }) {
  const [stats, setStats] = useState<Stats | undefined>();
  const [readAt, setReadAt] = useState(0);

  useEffect(() => {
    let stopped = false;
    const read = () =>
      api.stats().then(
        (answer) => {
          if (stopped) return;
          setStats(answer);
          setReadAt(Date.now());
        },
        (error: unknown) => !stopped && onError(error),
      );
    void read();
    const timer = setInterval(read, REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [api]);

  if (!stats) return <p aria-busy="true">Reading the numbers…</p>;
  const { connections, outbox, series } = stats;
  return (
    <section aria-labelledby="overview-title">
      <h2 id="overview-title">Overview</h2>
      <p class="muted">
        This node, read at {clock(readAt)}; again every {REFRESH_MS / 1000} s.
      </p>

      <h3>Live connections</h3>
      <dl class="tiles" data-testid="connections">
        <div>
          <dt>WebSocket</dt>
          <dd data-channel="websocket">{connections.websocket}</dd>
        </div>
        <div>
          <dt>UDP</dt>
          <dd data-channel="udp">{connections.udp}</dd>
        </div>
        <div>
          <dt>Web3MQ</dt>
          <dd data-channel="web3mq">{connections.web3mq}</dd>
        </div>
      </dl>

      <h3>Last hour</h3>
      <div class="charts">
        <Chart
          title="Notifications"
          start={series.start}
          stepSeconds={series.stepSeconds}
          lines={[{ label: 'committed', values: series.notifications, className: 'line-notifications' }]}
        />
        <Chart
          title="Pushes delivered"
          start={series.start}
          stepSeconds={series.stepSeconds}
          lines={[{ label: 'delivered', values: series.delivered, className: 'line-delivered' }]}
        />
        <Chart
          title="Pushes retried and dead"
          start={series.start}
          stepSeconds={series.stepSeconds}
          lines={[
            { label: 'retried', values: series.retried, className: 'line-retried' },
            { label: 'dead', values: series.dead, className: 'line-dead' },
            { label: 'failed', values: series.failed, className: 'line-failed' },
          ]}
        />
      </div>

      <h3>Outbox backlog</h3>
      <table class="grid">
        <caption class="muted">Pushes still to send, on every node, by provider</caption>
        <thead>
          <tr>
            <th scope="col">Provider</th>
            <th scope="col">Pending</th>
            <th scope="col">Retrying</th>
            <th scope="col">Held</th>
            <th scope="col">Dead</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(outbox).map(([provider, backlog]) => (
            <tr key={provider}>
              <th scope="row">{provider}</th>
              <td>{backlog.pending}</td>
              <td>{backlog.retrying}</td>
              <td>{backlog.held}</td>
              <td>{backlog.dead}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
