-- Slack delivers events at least once and retries when an ack is slow (Bolt passes retryNum but
-- does not deduplicate): an event is handled only by the delivery that records its id first.
CREATE TABLE slack_events (
  event_id text PRIMARY KEY,
  type text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
