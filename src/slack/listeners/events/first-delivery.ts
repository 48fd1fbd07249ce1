import type { Db } from '../../../store/db.ts';
import { recordSlackEvent } from '../../../store/slack-events.ts';

/** True for the first delivery of an event id; Slack's retries of it answer false. */
export async function firstDelivery(db: Db, eventId: string | undefined, type: string): Promise<boolean> {
  if (!eventId) return true;
  return recordSlackEvent(db, eventId, type);
}
