-- The Slack outbox no longer stops at a failing message: the message waits (not_before, a delay
-- growing with its attempts) while the drain carries on with other incidents' messages, and after
-- the last attempt it is marked dead (dead_at), logged and counted in /metrics, never dropped
-- silently. A claim names its holder (claimed_by), who renews it while the post is in flight.
ALTER TABLE thread_messages
  ADD COLUMN not_before timestamptz,
  ADD COLUMN dead_at timestamptz,
  ADD COLUMN claimed_by text;
-- The drain before this one skipped a message after 10 attempts without a word: those are dead.
UPDATE thread_messages SET dead_at = now() WHERE posted_at IS NULL AND attempts >= 10;
-- A reply waits for the earlier unposted replies of its incident (they keep their order).
CREATE INDEX thread_messages_pending_by_incident ON thread_messages (incident_id, id)
  WHERE posted_at IS NULL AND dead_at IS NULL;
-- The hash of the root as last posted or updated: the root is not updated when it would not change.
ALTER TABLE incidents ADD COLUMN root_hash text;
