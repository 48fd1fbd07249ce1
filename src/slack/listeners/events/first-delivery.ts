import type { Db } from '../../../store/db.ts';

/** True for the first delivery of an event id; Slack's retries of it answer false. */
export async function firstDelivery(db: Db, eventId: string | undefined, type: string): Promise<boolean> {
  if (!eventId) return true;
  const { rows } = await db.executeSql<{ event_id: string }>(
    'INSERT INTO slack_events (event_id, type) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING RETURNING event_id',
    [eventId, type],
  );
  return rows.length === 1;
}
