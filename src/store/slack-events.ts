import type { Db } from './db.ts';

/** Records a Slack event id; true the first time, false for Slack's retries of it. */
export async function recordSlackEvent(db: Db, eventId: string, type: string): Promise<boolean> {
  const { rows } = await db.executeSql<{ event_id: string }>(
    'INSERT INTO slack_events (event_id, type) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING RETURNING event_id',
    [eventId, type],
  );
  return rows.length === 1;
}
