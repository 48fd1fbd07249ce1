/**
 * The Slack port: what the outbox, the jobs and the sweeper need of Slack's Web API, and nothing
 * more. app.ts adapts the Web API client to it (slackPoster); tests give a fake that speaks the
 * same shapes. Other folders import it from here, never the outbox that drains through it.
 */

export const OUTBOX_EVENT_TYPE = 'nightshift_outbox';

/** What a posted message carries so it can be found again: Slack's message metadata. */
export interface OutboxTag {
  event_type: typeof OUTBOX_EVENT_TYPE;
  event_payload: { key: string };
}

/** The tag of the message queued under `key`: the outbox's dedup key, or `channel:<key>`. */
export function outboxTag(key: string): OutboxTag {
  return { event_type: OUTBOX_EVENT_TYPE, event_payload: { key } };
}

/** A message as conversations.history/replies return it, with its metadata. */
export interface TaggedMessage {
  ts: string;
  metadata?: { event_type?: string; event_payload?: Record<string, unknown> };
  /** The ids of the files the message shares (a file shared in a thread is such a message). */
  files?: string[];
}

export interface SlackPoster {
  postMessage(args: {
    channel: string;
    text: string;
    blocks: unknown[];
    thread_ts?: string;
    metadata?: OutboxTag;
  }): Promise<{ channel?: string; ts?: string }>;
  /**
   * Recent messages with their metadata: a thread's (threadTs) or the channel's latest (up to 1,000).
   * Without it, a post whose answer was lost may be posted again.
   */
  history?(args: { channel: string; threadTs?: string }): Promise<TaggedMessage[]>;
  update(args: { channel: string; ts: string; text: string; blocks: unknown[] }): Promise<unknown>;
  /**
   * Long text (a summary, a script's output) goes to the thread as a file, not a wall of text, in
   * two steps. First the file is uploaded (files.getUploadURLExternal, then its bytes), which
   * Slack shows nowhere; its id comes back.
   */
  uploadFile(args: { content: string; filename: string }): Promise<{ fileId: string }>;
  /**
   * Then it is shared in the thread (files.completeUploadExternal), the one step Slack shows: a
   * share whose answer was lost is found by the file's id in the thread's history.
   */
  shareFile(args: {
    fileId: string;
    channel_id: string;
    thread_ts: string;
    title: string;
    initial_comment: string;
  }): Promise<unknown>;
}

/** True for a refusal by Slack itself (`ok: false`), as opposed to not reaching it. */
function refusedBySlack(error: unknown): boolean {
  return (error as { code?: string }).code === 'slack_webapi_platform_error';
}

/**
 * The ts of a message already posted with this tag, for a retry: the attempt before may have been
 * carried out by Slack with its answer lost (a timeout, a cut connection, a 5xx after the fact).
 * A lookup Slack itself refuses (`ok: false`, say a channel given by name) cannot tell, and the
 * message is posted; a lookup that cannot reach Slack fails the attempt, to be tried again.
 */
export async function findTagged(
  slack: SlackPoster,
  where: { channel: string; threadTs?: string },
  tag: OutboxTag,
): Promise<string | undefined> {
  if (!slack.history) return undefined;
  let messages: TaggedMessage[];
  try {
    messages = await slack.history(where);
  } catch (error) {
    if (refusedBySlack(error)) return undefined;
    throw error;
  }
  return messages.find(
    (m) =>
      m.metadata?.event_type === tag.event_type && m.metadata.event_payload?.key === tag.event_payload.key,
  )?.ts;
}

/** Whether a message of the thread shares the file: a share whose answer was lost, for a retry. */
export async function findSharedFile(
  slack: SlackPoster,
  where: { channel: string; threadTs: string },
  fileId: string,
): Promise<boolean> {
  if (!slack.history) return false;
  try {
    return (await slack.history(where)).some((m) => m.files?.includes(fileId));
  } catch (error) {
    if (refusedBySlack(error)) return false;
    throw error;
  }
}
