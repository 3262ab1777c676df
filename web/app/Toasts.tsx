import type { Toast } from './live.ts';
import { conversationHref } from './route.ts';

/** New notifications in the page, read out by screen readers (a polite live region). */
export function Toasts({ toasts, dismiss }: { toasts: Toast[]; dismiss(key: string): void }) {
  return (
    <div class="toasts" aria-live="polite" aria-label="Notifications">
      {toasts.map((toast) => (
        <div class="toast" key={toast.key} data-conversation={toast.conversationid ?? undefined}>
          {toast.conversationid ? (
            <a href={conversationHref(toast.conversationid)} onClick={() => dismiss(toast.key)}>
              {toast.title}
            </a>
          ) : (
            <span>{toast.title}</span>
          )}
          {toast.body && <span class="toast-body">{toast.body}</span>}
          <button type="button" class="close" aria-label={`Dismiss: ${toast.title}`} onClick={() => dismiss(toast.key)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
