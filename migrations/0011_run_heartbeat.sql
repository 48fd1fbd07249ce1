-- A run is claimed, run and always finished by one path (src/jobs/workers/run-proposal.ts); when
-- its worker dies instead, nothing finishes it. While a run is in flight its worker writes
-- heartbeat_at every few seconds, and the sweeper fails a run whose heartbeat is older than its
-- deadline, saying why. Runs already running when this is applied count from now.
ALTER TABLE runs ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX runs_running ON runs (heartbeat_at) WHERE state = 'running';

-- Edits of one thread message never step back. Each write of a message's body has a rank (a
-- proposal's: its state, then its number of decisions; a transfer's progress: its count of
-- draws) and is refused when the message already holds a higher one; an accepted write bumps
-- version. A post records the version it sends (edited_version, set when the outbox claims the
-- message). Slack is sent one edit of a message at a time, always the latest body: the sender
-- claims the message (edit_claimed_by, renewed while the call is in flight, as the outbox's
-- claims are), sends, records edited_version, and sends again while a newer version came in
-- meanwhile. A failed edit waits (edit_not_before, growing with edit_attempts) and the outbox
-- drain sends it again; a newer write clears the wait.
ALTER TABLE thread_messages
  ADD COLUMN rank bigint NOT NULL DEFAULT 0,
  ADD COLUMN version bigint NOT NULL DEFAULT 0,
  ADD COLUMN edited_version bigint NOT NULL DEFAULT 0,
  ADD COLUMN edit_claimed_by text,
  ADD COLUMN edit_claimed_at timestamptz,
  ADD COLUMN edit_attempts integer NOT NULL DEFAULT 0,
  ADD COLUMN edit_not_before timestamptz,
  ADD COLUMN edit_error text;
-- Posted messages whose latest body Slack does not have yet: the drain's work list.
CREATE INDEX thread_messages_unedited ON thread_messages (id)
  WHERE ts IS NOT NULL AND version > edited_version;
