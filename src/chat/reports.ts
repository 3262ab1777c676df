import { randomUUID } from 'node:crypto';
import type { Notifier } from '../notify/notifier.ts';
import { requireParticipant, markConversationRead } from './conversations.ts';

export type ReportType = 'viewed' | 'delivered';

export interface IncomingReport {
  type: ReportType;
  id?: string;
  created: string;
  /** The report fields as the client sent them; kept and returned with the report. */
  fields: Record<string, unknown>;
}

/**
 * Stores a report. A `viewed` report brings the reader's unread count for the conversation
 * to zero and, when that changed anything, sends a clean notification with the new badge
 * to all of the reader's devices.
 */
export async function addReport(notifier: Notifier, userId: string, conversationId: string, report: IncomingReport) {
  return notifier.transact(async (trx, emit) => {
    await requireParticipant(trx, conversationId, userId);
    const now = Date.now();
    const id = report.id ?? randomUUID().replace(/-/g, '');
    await trx
      .insertInto('reports')
      .values({
        conversation_id: conversationId,
        id,
        user_id: userId,
        type: report.type,
        created: report.created,
        body: JSON.stringify(report.fields),
        received_at: now,
      })
      .onConflict((oc) => oc.columns(['conversation_id', 'id']).doNothing())
      .execute();
    await trx.updateTable('conversations').set({ last_report_id: id, changed_at: now }).where('id', '=', conversationId).execute();
    if (report.type === 'viewed') await markConversationRead(trx, emit, userId, conversationId, now);
    return { id };
  });
}
