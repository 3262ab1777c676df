/**
 * The badge outside the page: "(N) Herald" in the tab title, and the favicon with the count
 * drawn on it (an SVG data: URL, which the page's CSP allows as an image).
 */
const BASE_ICON = '<rect width="64" height="64" rx="14" fill="#1f4e8c"/><path d="M18 46V18h6v11h16V18h6v28h-6V35H24v11z" fill="#fff"/>';

export function faviconFor(badge: number): string {
  if (badge <= 0) return '/assets/favicon.svg';
  const text = badge > 99 ? '99+' : String(badge);
  const dot =
    `<circle cx="46" cy="18" r="18" fill="#d93025"/>` +
    `<text x="46" y="25" font-family="sans-serif" font-size="${text.length > 2 ? 15 : 20}" font-weight="bold" fill="#fff" text-anchor="middle">${text}</text>`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">${BASE_ICON}${dot}</svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

export function showBadge(badge: number): void {
  document.title = badge > 0 ? `(${badge}) Herald` : 'Herald';
  const link = document.querySelector<HTMLLinkElement>('link[rel="icon"]');
  if (link) link.href = faviconFor(badge);
}
