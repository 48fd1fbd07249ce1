-- The Slack outbox is drained by any bot process: a message is claimed before it is posted, so
-- two processes never post it twice, and a claim older than a minute (a crash) is taken over.
ALTER TABLE thread_messages
  ADD COLUMN claimed_at timestamptz,
  ADD COLUMN attempts integer NOT NULL DEFAULT 0,
  ADD COLUMN last_error text;
CREATE INDEX thread_messages_unposted ON thread_messages (id) WHERE posted_at IS NULL;
