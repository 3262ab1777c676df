/** Times as the operator's browser writes them. */
export function time(ms: number | null): string {
  if (ms === null || ms === 0) return '—';
  return new Date(ms).toLocaleString();
}

export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString();
}

export function total(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0);
}
