/** One line of a chart: its values (oldest first) and the CSS class that colours it. */
export interface Line {
  label: string;
  values: number[];
  className: string;
}

const WIDTH = 300;
const HEIGHT = 80;

/**
 * A small line chart of per-minute counts, drawn as inline SVG (no chart library). The
 * newest minute is on the right; the scale starts at zero and ends at the largest value.
 */
export function Chart({ title, lines, start, stepSeconds }: { title: string; lines: Line[]; start: number; stepSeconds: number }) {
  const max = Math.max(1, ...lines.flatMap((line) => line.values));
  const count = Math.max(2, lines[0]?.values.length ?? 0);
  const x = (i: number) => (i / (count - 1)) * WIDTH;
  const y = (v: number) => HEIGHT - (v / max) * (HEIGHT - 4);
  const summary = lines
    .map((line) => `${line.label}: ${line.values.reduce((a, b) => a + b, 0)} in the hour, ${line.values.at(-1) ?? 0} this minute`)
    .join('; ');
  const from = new Date(start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <svg
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        preserveAspectRatio="none"
        role="img"
        aria-label={`${title}, per ${stepSeconds} s over the last hour. ${summary}`}
      >
        <line class="axis" x1="0" y1={HEIGHT} x2={WIDTH} y2={HEIGHT} />
        {lines.map((line) => (
          <polyline
            key={line.label}
            class={line.className}
            points={line.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}
          />
        ))}
      </svg>
      <p class="scale muted">
        per minute since {from}, scale 0–{max}
      </p>
      <ul class="legend">
        {lines.map((line) => (
          <li key={line.label}>
            <span class={`swatch ${line.className}`} aria-hidden="true" /> {line.label}: {line.values.at(-1) ?? 0} this minute
          </li>
        ))}
      </ul>
    </figure>
  );
}
