/**
 * The signed-in user's inbox as it lives in the page: the conversations with their unread
 * counts, the badge, the toasts, and the live connection that keeps them current. The
 * connection resumes from the last sequence this browser saw (kept across reloads), so a
 * notification is neither lost nor shown twice.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { BrowserReceiver, type CleanFrame, type NotificationFrame } from '../../client/browser-receiver.ts';
import type { Conversation, Ozeki } from '../shared/ozeki.ts';
import { forgetSeq, savedSeq, saveSeq, type Session } from './session.ts';

export interface Toast {
  /** One toast per conversation (or per notification without one): a newer one replaces it. */
  key: string;
  conversationid: string | null;
  title: string;
  body: string;
}

export type Connection = 'connecting' | 'live' | 'offline';

export interface LiveInbox {
  conversations: Conversation[] | undefined;
  badge: number;
  toasts: Toast[];
  connection: Connection;
  /** Why the list could not be loaded, if it could not. */
  problem: string | undefined;
  dismiss(key: string): void;
  /** Tells Herald the user has read the conversation: the badge falls on every device. */
  markRead(conversationid: string): Promise<void>;
  refresh(): Promise<void>;
}

const TOAST_MS = 8000;
const MAX_TOASTS = 3;

export function useLiveInbox(
  session: Session,
  ozeki: Ozeki,
  openConversation: string | null,
  onRefused: (reason: string) => void,
): LiveInbox {
  const [conversations, setList] = useState<Conversation[] | undefined>(undefined);
  // The receiver's handlers outlive renders: they read the list and the open conversation here.
  const list = useRef<Conversation[] | undefined>(undefined);
  const setConversations = (next: Conversation[] | undefined) => setList((list.current = next));
  const [badge, setBadge] = useState(0);
  const [toasts, setToasts] = useState<Toast[]>([]);
  const [connection, setConnection] = useState<Connection>('connecting');
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const open = useRef(openConversation);
  open.current = openConversation;
  const timers = useRef(new Map<string, ReturnType<typeof setTimeout>>());

  const dismiss = (key: string) => {
    clearTimeout(timers.current.get(key));
    timers.current.delete(key);
    setToasts((shown) => shown.filter((toast) => toast.key !== key));
  };

  const refresh = async () => {
    try {
      setConversations(await ozeki.conversations());
      setProblem(undefined);
    } catch (error) {
      setProblem((error as Error).message);
    }
  };

  const markRead = async (conversationid: string) => {
    const conversation = list.current?.find((c) => c.id === conversationid);
    for (const toast of toasts) if (toast.conversationid === conversationid) dismiss(toast.key);
    await ozeki.viewed(conversationid, conversation?.lastmessageid ? [conversation.lastmessageid] : []);
  };

  useEffect(() => {
    const userAtPage = () => document.visibilityState === 'visible';
    const showToast = (n: NotificationFrame) => {
      const key = n.conversationid ?? n.id;
      clearTimeout(timers.current.get(key));
      timers.current.set(
        key,
        setTimeout(() => dismiss(key), TOAST_MS),
      );
      const toast = { key, conversationid: n.conversationid, title: n.title, body: n.body };
      setToasts((shown) => [...shown.filter((t) => t.key !== key), toast].slice(-MAX_TOASTS));
    };
    const setUnread = (conversationid: string, unread: number, lastmessageid?: string) =>
      setConversations(
        list.current?.map((c) => (c.id === conversationid ? { ...c, unread, lastmessageid: lastmessageid ?? c.lastmessageid } : c)),
      );

    const onNotification = (n: NotificationFrame) => {
      setBadge(n.badge);
      if (n.kind === 'message' && n.conversationid) {
        const unread = typeof n.data.unread === 'number' ? n.data.unread : undefined;
        const messageid = typeof n.data.messageid === 'string' ? n.data.messageid : undefined;
        const known = list.current?.some((c) => c.id === n.conversationid) ?? false;
        if (known && unread !== undefined) setUnread(n.conversationid, unread, messageid);
        else void refresh();
        if (n.conversationid === open.current && userAtPage()) {
          void ozeki.viewed(n.conversationid, messageid ? [messageid] : []).catch(() => undefined);
          return;
        }
      } else if (n.kind === 'conversationlist') {
        void refresh();
      }
      if (!n.silent) showToast(n);
    };
    const onClean = (c: CleanFrame) => {
      setBadge(c.badge);
      if (c.conversationid) setUnread(c.conversationid, 0);
      else void refresh();
      setToasts((shown) => shown.filter((t) => c.conversationid !== null && t.conversationid !== c.conversationid));
    };

    let receiver: BrowserReceiver;
    const start = (since: number | undefined) => {
      receiver = new BrowserReceiver({
        url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
        station: ozeki.station,
        since,
        onSeq: (seq) => saveSeq(session.userid, seq),
      });
      receiver.on('hello', (hello) => {
        setBadge(hello.badge);
        setConnection('live');
        void refresh();
      });
      receiver.on('notification', onNotification);
      receiver.on('clean', onClean);
      receiver.on('disconnected', () => setConnection('offline'));
      receiver.on('refused', ({ code, reason }) => {
        setConnection('offline');
        // A sequence from another server (or a reset one): start again from where it stands.
        if (code === 4400 && reason.startsWith('since')) {
          forgetSeq(session.userid);
          start(undefined);
        } else onRefused(reason);
      });
      receiver.setActive(userAtPage() && document.hasFocus());
      receiver.start();
    };
    start(savedSeq(session.userid));

    const onUse = () => {
      receiver.setActive(userAtPage() && document.hasFocus());
      // Back at the page with the conversation open: what came meanwhile is read now.
      const openNow = list.current?.find((c) => c.id === open.current);
      if (openNow && openNow.unread > 0 && userAtPage()) {
        void ozeki.viewed(openNow.id, openNow.lastmessageid ? [openNow.lastmessageid] : []).catch(() => undefined);
      }
    };
    const onOnline = () => receiver.reconnectNow();
    // The browser knows the network is gone before the socket does: reconnect once it is back.
    const onOffline = () => receiver.drop();
    document.addEventListener('visibilitychange', onUse);
    window.addEventListener('focus', onUse);
    window.addEventListener('blur', onUse);
    window.addEventListener('online', onOnline);
    window.addEventListener('offline', onOffline);
    return () => {
      receiver.close();
      document.removeEventListener('visibilitychange', onUse);
      window.removeEventListener('focus', onUse);
      window.removeEventListener('blur', onUse);
      window.removeEventListener('online', onOnline);
      window.removeEventListener('offline', onOffline);
      for (const timer of timers.current.values()) clearTimeout(timer);
    };
    // One connection per signed-in session.
  }, [session.userid]);

  return { conversations, badge, toasts, connection, problem, dismiss, markRead, refresh };
}
