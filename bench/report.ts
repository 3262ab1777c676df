/** Turns one bench run into the printed table, the BENCHMARKS.md section and a history line. */
import type { FanoutResult } from './fanout.ts';
import type { LatencyResult } from './latency.ts';
import { CEILING_P99_MS, type CeilingResult } from './latency-ceiling.ts';
import type { ConnectionsResult } from './connections.ts';
import type { PushResult } from './push.ts';
import type { ClusterFanoutResult, ClusterLatencyResult } from './cluster.ts';
import type { ClusterConnectionsResult } from './cluster-connections.ts';
import type { ProviderPushResult } from './push-providers.ts';
import { formatInt } from './lib/stats.ts';

export type Outcome<T> =
  | { state: 'done'; value: T; seconds: number }
  | { state: 'failed'; reason: string }
  | { state: 'unavailable'; reason: string }
  | { state: 'skipped'; reason: string };

export interface Report {
  date: string;
  cores: number;
  cpu: string;
  node: string;
  command: string;
  commit: string;
  quick: boolean;
  runs: number;
  seconds: number;
  load: [number, number];
  fanout: Outcome<FanoutResult>;
  latency: Outcome<LatencyResult>;
  /** The latency scenario on PostgreSQL (BENCH_DATABASE_URL), beside SQLite's in the same run. */
  latencyPostgres?: Outcome<LatencyResult>;
  latencyCeiling: Outcome<CeilingResult>;
  connections: Outcome<ConnectionsResult>;
  push: Outcome<PushResult>;
  pushFcm: Outcome<ProviderPushResult>;
  pushWebPush: Outcome<ProviderPushResult>;
  clusterFanout: Outcome<ClusterFanoutResult>;
  clusterLatency: Outcome<ClusterLatencyResult>;
  clusterConnections: Outcome<ClusterConnectionsResult>;
}

interface Row {
  scenario: string;
  herald: string;
  baselines: string;
  ratios: string;
  target: string;
  result: string;
}

const x = (v: number) => `${v.toFixed(2)}×`;
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const signed = (v: number) => (v < 0 ? `−${ms(-v)}` : `+${ms(v)}`);
const ms = (v: number) => (!Number.isFinite(v) ? 'n/a' : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(2)} ms`);

/** "met (by +0.12×)" / "NOT met (0.26× of the 0.70× needed: 2.7× short)". */
function atLeast(ratio: number, needed: number): string {
  return ratio >= needed
    ? `met (${x(ratio)}, ${x(ratio / needed)} the bar)`
    : `NOT met (${x(ratio)} of ${x(needed)}: needs ${x(needed / ratio)} more)`;
}

function atMost(value: number, limit: number, show: (v: number) => string): string {
  return value <= limit ? `met (${show(value)}, ${show(limit - value)} under)` : `NOT met (${show(value)}: ${x(value / limit)} the limit)`;
}

function notRun(scenario: string, outcome: { state: string; reason: string }, target: string): Row {
  const what = outcome.state === 'unavailable' ? 'not available yet' : outcome.state === 'failed' ? 'FAILED' : 'skipped';
  return { scenario, herald: what, baselines: '', ratios: '', target, result: `${what}: ${outcome.reason}` };
}

function rows(r: Report): Row[] {
  const out: Row[] = [];
  const fanoutTarget = '≥ 1.00× bare ws';
  if (r.fanout.state === 'done') {
    const f = r.fanout.value;
    const vsWs = f.herald.median / f.ws.median;
    const vsIo = f.herald.median / f.socketio.median;
    out.push({
      scenario: `fan-out: ${formatInt(f.devices)} WebSocket devices × ${f.messages} messages, deliveries/s (frame ${Math.round(f.herald.frameBytes)} B)`,
      herald: formatInt(f.herald.median),
      baselines: `bare ws ${formatInt(f.ws.median)}; socket.io ${formatInt(f.socketio.median)}`,
      ratios: `${x(vsWs)} ws; ${x(vsIo)} socket.io`,
      target: fanoutTarget,
      result: atLeast(vsWs, 1.0),
    });
    const vsAdd = f.gateway.median / f.herald.median;
    out.push({
      scenario: `send API → ${formatInt(f.devices)} WebSocket devices: POST /v1/notifications to all of them × ${f.messages}, deliveries/s`,
      herald: formatInt(f.gateway.median),
      baselines: `Ozeki add ${formatInt(f.herald.median)}`,
      ratios: `${x(vsAdd)} Ozeki add; ${x(f.gateway.median / f.ws.median)} ws`,
      target: '≥ 0.90× Ozeki add',
      result: atLeast(vsAdd, 0.9),
    });
    out.push({
      scenario: 'fan-out: server CPU time per delivery (user + system; less disturbed by a busy machine)',
      herald: `${f.herald.cpuMedian.toFixed(1)} µs`,
      baselines: `bare ws ${f.ws.cpuMedian.toFixed(1)} µs; socket.io ${f.socketio.cpuMedian.toFixed(1)} µs`,
      ratios: `ws/Herald ${x(f.ws.cpuMedian / f.herald.cpuMedian)}; socket.io/Herald ${x(f.socketio.cpuMedian / f.herald.cpuMedian)}`,
      target: '≤ bare ws',
      result: `${atMost(f.herald.cpuMedian / f.ws.cpuMedian, 1, x)} of bare ws's (CPU-bound estimate ${x(f.ws.cpuMedian / f.herald.cpuMedian)} ws)`,
    });
  } else out.push(notRun('fan-out', r.fanout, fanoutTarget));

  const latencyTarget = 'p99 < 5 ms';
  if (r.latency.state === 'done') {
    const l = r.latency.value;
    out.push({
      scenario: `latency: ${formatInt(l.devices)} devices, ${formatInt(l.rate)} messages/s (sent ${formatInt(l.achievedRate)}/s), request sent → frame received`,
      herald: `p50 ${ms(l.p50)}, p99 ${ms(l.p99)}, max ${ms(l.max)}`,
      baselines: `(HTTP answer p99 ${ms(l.answerP99)}; server CPU ${Math.round(l.cpuPerMessage)} µs per message)`,
      ratios: '',
      target: latencyTarget,
      result: atMost(l.p99, 5, ms),
    });
  } else out.push(notRun('latency', r.latency, latencyTarget));
  if (r.latencyPostgres?.state === 'done') {
    const l = r.latencyPostgres.value;
    const sqlite = r.latency.state === 'done' ? r.latency.value : undefined;
    const cpuRatio = sqlite ? l.cpuPerMessage / sqlite.cpuPerMessage : NaN;
    out.push({
      scenario: `latency on PostgreSQL: ${formatInt(l.devices)} devices, ${formatInt(l.rate)} messages/s (sent ${formatInt(l.achievedRate)}/s)`,
      herald: `p50 ${ms(l.p50)}, p99 ${ms(l.p99)}, max ${ms(l.max)}; server CPU ${Math.round(l.cpuPerMessage)} µs per message (+ PostgreSQL's ${Math.round(l.databaseCpuPerMessage)} µs)`,
      baselines: sqlite ? `SQLite: p99 ${ms(sqlite.p99)}, server CPU ${Math.round(sqlite.cpuPerMessage)} µs per message` : '',
      ratios: sqlite ? `CPU ${x(cpuRatio)} SQLite's` : '',
      target: 'p99 < 20 ms; CPU ≤ 1.50× SQLite',
      result: `${atMost(l.p99, 20, ms)}; ${sqlite ? atMost(cpuRatio, 1.5, x) : 'no SQLite figure'}`,
    });
  } else if (r.latencyPostgres) out.push(notRun('latency on PostgreSQL', r.latencyPostgres, 'p99 < 20 ms; CPU ≤ 1.50× SQLite'));

  const ceilingTarget = `highest rate with p99 < ${CEILING_P99_MS} ms`;
  if (r.latencyCeiling.state === 'done') {
    const c = r.latencyCeiling.value;
    const last = c.steps[c.steps.length - 1];
    out.push({
      scenario: `latency ceiling: ${formatInt(c.devices)} devices, one-to-one messages at rising rates, ${c.seconds} s each (SQLite, 1 node)`,
      herald: c.ceiling > 0 ? `${formatInt(c.ceiling)} messages/s` : 'none held',
      baselines: c.steps.map((step) => `${formatInt(step.rate)}/s p99 ${ms(step.p99)}${step.held ? '' : ` (${step.why})`}`).join('; '),
      ratios: '',
      target: ceilingTarget,
      result: last && last.held ? `reported (every rate tried held; try higher with BENCH_CEILING_RATES)` : 'reported',
    });
  } else out.push(notRun('latency ceiling', r.latencyCeiling, ceilingTarget));

  const memoryTarget = '≤ 12 KB per connection at 15,000';
  if (r.connections.state === 'done') {
    const c = r.connections.value;
    c.steps.forEach((step, i) => {
      const last = i === c.steps.length - 1;
      out.push({
        scenario: `connections: server RSS per idle WebSocket at ${formatInt(step)}`,
        herald: kb(c.herald[i]),
        baselines: `bare ws ${kb(c.ws[i])}`,
        ratios: `${x(c.herald[i] / c.ws[i])} ws`,
        target: last ? memoryTarget : '',
        result: last
          ? step >= 15_000
            ? atMost(c.herald[i] / 1024, 12, (v) => `${v.toFixed(1)} KB`)
            : `measured at ${formatInt(step)} only`
          : '',
      });
    });
  } else out.push(notRun('connections', r.connections, memoryTarget));

  const pushTarget = '≥ 1.00× node:http2 and ≥ 1.30× @parse/node-apn';
  if (r.push.state === 'done') {
    const p = r.push.value;
    const vsBare = p.herald.median / p.http2.median;
    const vsApn = p.herald.median / p.nodeApn.median;
    out.push({
      scenario: `mobile push: ${formatInt(p.pushes)} pushes to the APNs double, pushes/s (Herald: first add request → last push accepted)`,
      herald: `${formatInt(p.herald.median)} (outbox phase alone ${formatInt(p.herald.outboxMedian)})`,
      baselines: `node:http2 ${formatInt(p.http2.median)}; @parse/node-apn ${formatInt(p.nodeApn.median)}`,
      ratios: `${x(vsBare)} http2; ${x(vsApn)} node-apn`,
      target: pushTarget,
      result: `${atLeast(vsBare, 1.0)}; ${atLeast(vsApn, 1.3)}`,
    });
    out.push({
      scenario: 'mobile push: CPU time per push of the sending process (Herald: the whole server, feed and outbox included)',
      herald: `${p.herald.cpuPerPush.toFixed(0)} µs`,
      baselines: `node:http2 ${p.http2.cpuPerPush.toFixed(0)} µs; @parse/node-apn ${p.nodeApn.cpuPerPush.toFixed(0)} µs`,
      ratios: `http2/Herald ${x(p.http2.cpuPerPush / p.herald.cpuPerPush)}; node-apn/Herald ${x(p.nodeApn.cpuPerPush / p.herald.cpuPerPush)}`,
      target: 'indicative',
      result: '',
    });
    out.push({
      scenario: "mobile push: the APNs double's CPU time per push, and its busy share of the wall time (near 1.00 the double set the rate)",
      herald: `${p.herald.doubleCpuPerPush.toFixed(0)} µs, busy ${p.herald.doubleBusy.toFixed(2)}`,
      baselines: `node:http2 ${p.http2.doubleCpuPerPush.toFixed(0)} µs, busy ${p.http2.doubleBusy.toFixed(2)}; @parse/node-apn ${p.nodeApn.doubleCpuPerPush.toFixed(0)} µs, busy ${p.nodeApn.doubleBusy.toFixed(2)}`,
      ratios: '',
      target: 'indicative',
      result: '',
    });
  } else out.push(notRun('mobile push', r.push, pushTarget));
  out.push(providerRow('FCM', r.pushFcm, 'Android devices', 'FCM double', '≥ 1.00× node:http2 (as APNs)', (ratio) => atLeast(ratio, 1)));
  out.push(
    providerRow('Web Push', r.pushWebPush, 'browser subscriptions', 'Web Push double', '≥ 2.00× web-push', (ratio) => atLeast(ratio, 2)),
  );
  out.push(...clusterRows(r));
  return out;
}

function providerRow(
  name: string,
  outcome: Outcome<ProviderPushResult>,
  devices: string,
  double: string,
  target: string,
  result: (ratio: number) => string,
): Row {
  if (outcome.state !== 'done') return notRun(`${name} push`, outcome, target);
  const p = outcome.value;
  const ratio = p.herald.median / p.other.median;
  return {
    scenario: `${name} push: ${formatInt(p.pushes)} pushes to ${devices} at the ${double}, pushes/s (CPU per push of the sender; the double's)`,
    herald: `${formatInt(p.herald.median)} (outbox phase ${formatInt(p.herald.outboxMedian)}; ${p.herald.cpuPerPush.toFixed(0)} µs; ${p.herald.doubleCpuPerPush.toFixed(0)} µs)`,
    baselines: `${p.baseline} ${formatInt(p.other.median)} (${p.other.cpuPerPush.toFixed(0)} µs; ${p.other.doubleCpuPerPush.toFixed(0)} µs)`,
    ratios: `${x(ratio)} ${p.baseline}`,
    target,
    result: result(ratio) || `${x(ratio)} ${p.baseline}`,
  };
}

/** Issue 18: PostgreSQL single-node fan-out ≥ 0.6× SQLite's; PostgreSQL p99 < 20 ms and CPU per message ≤ 1.5× SQLite's. */
function clusterRows(r: Report): Row[] {
  const out: Row[] = [];
  const fanoutTarget = 'PostgreSQL ≥ 0.60× SQLite';
  if (r.clusterFanout.state === 'done') {
    const f = r.clusterFanout.value;
    const sqlite = f.sides.sqlite;
    for (const [name, label] of [
      ['pg1', 'PostgreSQL, 1 node'],
      ['pg2', 'PostgreSQL + Redis, 2 nodes (devices split)'],
    ] as const) {
      const side = f.sides[name];
      out.push({
        scenario: `cluster fan-out, ${label}: ${formatInt(f.devices)} devices × ${f.messages} messages, deliveries/s (server CPU per delivery, all nodes)`,
        herald: `${formatInt(side.median)} (${side.cpuMedian.toFixed(1)} µs)`,
        baselines: `SQLite, 1 node ${formatInt(sqlite.median)} (${sqlite.cpuMedian.toFixed(1)} µs)`,
        ratios: `${x(side.median / sqlite.median)} SQLite; CPU ${x(side.cpuMedian / sqlite.cpuMedian)}`,
        target: fanoutTarget,
        result: atLeast(side.median / sqlite.median, 0.6),
      });
    }
  } else out.push(notRun('cluster fan-out', r.clusterFanout, fanoutTarget));

  const latencyTarget = 'PostgreSQL p99 < 20 ms, CPU/message ≤ 1.5× SQLite';
  if (r.clusterLatency.state === 'done') {
    const l = r.clusterLatency.value;
    const sqlite = l.sides.sqlite;
    const shown = (side: ClusterLatencyResult['sides']['sqlite']) =>
      `p50 ${ms(side.p50)}, p99 ${ms(side.p99)}, max ${ms(side.max)}; ${side.framed}/${side.sent} framed; CPU ${Math.round(side.cpuPerMessage)} µs/message`;
    for (const [name, label] of [
      ['pg1', 'PostgreSQL, 1 node'],
      ['pg2-cross', 'PostgreSQL + Redis, 2 nodes, request to node A → frame from node B'],
      ['pg2-same', 'PostgreSQL + Redis, 2 nodes, sender and recipient on one node'],
    ] as const) {
      const side = l.sides[name];
      const complete = side.framed === side.sent;
      const cpuRatio = side.cpuPerMessage / sqlite.cpuPerMessage;
      out.push({
        scenario: `cluster latency, ${label}: ${formatInt(l.devices)} devices, ${formatInt(l.rate)} messages/s`,
        herald: shown(side),
        baselines: `SQLite, 1 node: ${shown(sqlite)}`,
        ratios: `p99 ${x(side.p99 / sqlite.p99)} SQLite; CPU ${x(cpuRatio)}`,
        target: latencyTarget,
        result: complete
          ? `${atMost(side.p99, 20, ms)}; CPU ${cpuRatio <= 1.5 ? 'met' : 'NOT met'} (${x(cpuRatio)})`
          : `NOT met: ${side.sent - side.framed} of ${side.sent} messages never framed`,
      });
    }
    const cross = l.sides['pg2-cross'];
    const same = l.sides['pg2-same'];
    out.push({
      scenario: 'cluster latency: the Redis hop (2 nodes, node A → node B minus same node)',
      herald: `p50 ${signed(cross.p50 - same.p50)}, p99 ${signed(cross.p99 - same.p99)}`,
      baselines: '',
      ratios: `p99 ${x(cross.p99 / same.p99)} same node`,
      target: 'reported',
      result: 'reported',
    });
  } else out.push(notRun('cluster latency', r.clusterLatency, latencyTarget));

  const connectionsTarget = '60,000 over 4 nodes, ≤ 4.5 KB per connection';
  if (r.clusterConnections.state === 'done') {
    const c = r.clusterConnections.value;
    c.steps.forEach((step, i) => {
      const last = i === c.steps.length - 1;
      out.push({
        scenario: `cluster connections: RSS per idle WebSocket at ${formatInt(step)} over ${c.nodes} nodes (${formatInt(Math.ceil(step / c.nodes))} per node, descriptor limit ${formatInt(c.descriptorLimit)}; opened in ${c.connectSeconds[i].toFixed(0)} s)`,
        herald: kb(c.herald[i]),
        baselines: last ? `bare ws, one node's share (${formatInt(c.wsConnections)}): ${kb(c.ws)}` : '',
        ratios: last ? `${x(c.herald[i] / c.ws)} ws` : '',
        target: last ? connectionsTarget : '',
        result: last
          ? step >= 60_000 && c.nodes >= 4
            ? atMost(c.herald[i] / 1024, 4.5, (v) => `${v.toFixed(1)} KB`)
            : `${atMost(c.herald[i] / 1024, 4.5, (v) => `${v.toFixed(1)} KB`)}; measured at ${formatInt(step)} over ${c.nodes} nodes only`
          : '',
      });
    });
  } else out.push(notRun('cluster connections', r.clusterConnections, connectionsTarget));
  return out;
}

function plainTable(list: Row[]): string {
  const header: Row = {
    scenario: 'scenario',
    herald: 'Herald',
    baselines: 'baselines (same run)',
    ratios: 'ratios',
    target: 'target',
    result: 'result',
  };
  const keys = Object.keys(header) as Array<keyof Row>;
  const all = [header, ...list];
  const width = (k: keyof Row) => Math.min(70, Math.max(...all.map((r) => r[k].length)));
  const line = (r: Row) => keys.map((k) => r[k].padEnd(width(k))).join(' | ');
  return [line(header), keys.map((k) => '-'.repeat(width(k))).join('-+-'), ...list.map(line)].join('\n');
}

function runDetails(r: Report): string[] {
  const lines: string[] = [];
  const list = (values: number[], f: (v: number) => string) => values.map(f).join(', ');
  if (r.fanout.state === 'done') {
    const f = r.fanout.value;
    lines.push(
      `- fan-out runs (deliveries/s): Herald ${list(f.herald.rates, formatInt)}; send API ${list(f.gateway.rates, formatInt)}; ws ${list(f.ws.rates, formatInt)}; socket.io ${list(f.socketio.rates, formatInt)}`,
      `- fan-out server CPU per delivery (µs): Herald ${list(f.herald.cpuPerDelivery, (v) => v.toFixed(1))}; send API ${list(f.gateway.cpuPerDelivery, (v) => v.toFixed(1))}; ws ${list(f.ws.cpuPerDelivery, (v) => v.toFixed(1))}; socket.io ${list(f.socketio.cpuPerDelivery, (v) => v.toFixed(1))}`,
    );
  }
  if (r.latency.state === 'done') {
    lines.push(
      `- latency runs (p50 / p99 / max): ${r.latency.value.runs.map((l) => `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)}`).join('; ')}`,
    );
  }
  if (r.latencyPostgres?.state === 'done') {
    lines.push(
      `- latency on PostgreSQL runs (p50 / p99 / max; CPU per message): ${r.latencyPostgres.value.runs.map((l) => `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.max)}; ${Math.round(l.cpuPerMessage ?? NaN)} µs`).join('; ')}`,
    );
  }
  if (r.connections.state === 'done') {
    const c = r.connections.value;
    lines.push(
      `- connections runs (per connection at ${c.steps.map(formatInt).join(' / ')}): Herald ${c.heraldRuns.map((run) => run.map(kb).join(' / ')).join('; ')}; ws ${c.wsRuns.map((run) => run.map(kb).join(' / ')).join('; ')}`,
    );
  }
  if (r.push.state === 'done') {
    const p = r.push.value;
    lines.push(
      `- push runs (pushes/s): Herald ${list(p.herald.rates, formatInt)} (outbox phase ${list(p.herald.outboxRates, formatInt)}); node:http2 ${list(p.http2.rates, formatInt)}; @parse/node-apn ${list(p.nodeApn.rates, formatInt)}; provider-token verifications at the double: ${p.tokenVerifications}`,
    );
  }
  for (const [name, o] of [
    ['FCM', r.pushFcm],
    ['Web Push', r.pushWebPush],
  ] as const) {
    if (o.state !== 'done') continue;
    lines.push(
      `- ${name} push runs (pushes/s): Herald ${list(o.value.herald.rates, formatInt)}; ${o.value.baseline} ${list(o.value.other.rates, formatInt)}`,
    );
  }
  if (r.clusterFanout.state === 'done') {
    const f = r.clusterFanout.value;
    lines.push(
      `- cluster fan-out runs (deliveries/s): SQLite ${list(f.sides.sqlite.rates, formatInt)}; PostgreSQL 1 node ${list(f.sides.pg1.rates, formatInt)}; PostgreSQL 2 nodes ${list(f.sides.pg2.rates, formatInt)}`,
      `- cluster fan-out node CPU per delivery (µs): SQLite ${list(f.sides.sqlite.cpuPerDelivery, (v) => v.toFixed(1))}; PostgreSQL 1 node ${list(f.sides.pg1.cpuPerDelivery, (v) => v.toFixed(1))}; PostgreSQL 2 nodes ${list(f.sides.pg2.cpuPerDelivery, (v) => v.toFixed(1))}`,
    );
    if (f.sides.pg1.dbCpuPerDelivery && f.sides.pg2.dbCpuPerDelivery) {
      lines.push(
        `- cluster fan-out PostgreSQL backends' CPU per delivery (µs): 1 node ${list(f.sides.pg1.dbCpuPerDelivery, (v) => v.toFixed(1))}; 2 nodes ${list(f.sides.pg2.dbCpuPerDelivery, (v) => v.toFixed(1))}`,
      );
    }
  }
  if (r.clusterLatency.state === 'done') {
    const l = r.clusterLatency.value;
    lines.push(
      `- cluster latency runs (p50 / p99 / max): ${(Object.keys(l.sides) as Array<keyof typeof l.sides>)
        .map((name) => `${name} ${l.sides[name].runs.map((run) => `${ms(run.p50)} / ${ms(run.p99)} / ${ms(run.max)}`).join('; ')}`)
        .join(' · ')}`,
    );
  }
  return lines;
}

export function renderReport(r: Report) {
  const list = rows(r);
  const heading = [
    `Herald bench, ${r.date}: ${r.cores} cores (${r.cpu}), Node ${r.node}, commit ${r.commit}`,
    `command: ${r.command}${r.quick ? '   (QUICK smoke run: small sizes, not comparable with the targets)' : ''}`,
    `each figure is the median of ${r.runs} run(s); ratios are within this run; load average ${r.load[0].toFixed(2)} at start, ${r.load[1].toFixed(2)} at end; took ${r.seconds.toFixed(0)} s`,
  ];
  const table = [...heading, '', plainTable(list), '', ...runDetails(r)].join('\n');
  const md = [
    `### Latest run`,
    '',
    `- date: ${r.date}`,
    `- machine: ${r.cores} cores (${r.cpu}), Node ${r.node}; load average ${r.load[0].toFixed(2)} at start, ${r.load[1].toFixed(2)} at end`,
    `- command: \`${r.command}\`${r.quick ? ' (QUICK smoke run: small sizes, not comparable with the targets)' : ''}`,
    `- commit: ${r.commit}`,
    `- each figure is the median of ${r.runs} run(s); ratios are taken within this run; the whole bench took ${r.seconds.toFixed(0)} s`,
    '',
    '| scenario | Herald | baselines (same run) | ratios | target | result |',
    '|---|---|---|---|---|---|',
    ...list.map((row) => `| ${[row.scenario, row.herald, row.baselines, row.ratios, row.target, row.result].join(' | ')} |`),
    '',
    ...runDetails(r),
  ].join('\n');
  const short = (o: Outcome<unknown>, f: () => string) => (o.state === 'done' ? f() : o.state);
  const history = `- ${r.date.slice(0, 16)} commit ${r.commit}${r.quick ? ' (QUICK)' : ''}, load ${r.load[0].toFixed(1)}: fan-out ${short(
    r.fanout,
    () => {
      const f = (r.fanout as { value: FanoutResult }).value;
      return `${formatInt(f.herald.median)}/s = ${x(f.herald.median / f.ws.median)} ws, ${x(f.herald.median / f.socketio.median)} socket.io; send API ${x(f.gateway.median / f.herald.median)} add`;
    },
  )}; latency ${short(r.latency, () => {
    const l = (r.latency as { value: LatencyResult }).value;
    return `p50 ${ms(l.p50)} p99 ${ms(l.p99)} max ${ms(l.max)}`;
  })}; memory ${short(r.connections, () => {
    const c = (r.connections as { value: ConnectionsResult }).value;
    return `${kb(c.herald[c.herald.length - 1])}/conn at ${formatInt(c.steps[c.steps.length - 1])} (ws ${kb(c.ws[c.ws.length - 1])})`;
  })}; push ${short(r.push, () => {
    const p = (r.push as { value: PushResult }).value;
    return `${formatInt(p.herald.median)}/s = ${x(p.herald.median / p.http2.median)} http2, ${x(p.herald.median / p.nodeApn.median)} node-apn`;
  })}; cluster fan-out ${short(r.clusterFanout, () => {
    const f = (r.clusterFanout as { value: ClusterFanoutResult }).value;
    return `PostgreSQL ${x(f.sides.pg1.median / f.sides.sqlite.median)}, 2 nodes ${x(f.sides.pg2.median / f.sides.sqlite.median)} SQLite`;
  })}; cluster latency p99 ${short(r.clusterLatency, () => {
    const l = (r.clusterLatency as { value: ClusterLatencyResult }).value;
    return `SQLite ${ms(l.sides.sqlite.p99)}, PostgreSQL ${ms(l.sides.pg1.p99)}, A→B ${ms(l.sides['pg2-cross'].p99)}`;
  })}; cluster memory ${short(r.clusterConnections, () => {
    const c = (r.clusterConnections as { value: ClusterConnectionsResult }).value;
    return `${kb(c.herald[c.herald.length - 1])}/conn at ${formatInt(c.steps[c.steps.length - 1])} over ${c.nodes} nodes`;
  })}`;
  return { table, markdown: md, history };
}
