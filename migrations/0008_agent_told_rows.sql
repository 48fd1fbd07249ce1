-- The agent is told of each finding and each finished run once, and of every one: a row is marked
-- in the transaction that stores the message that told it. The id cursors this replaces
-- (agent_state.seen_finding_id, seen_run_id) could skip a row for good: an id is taken when a
-- transaction inserts, so a job that commits later can add a finding below one already told, and
-- a run that finishes after a run with a higher id was passed over the same way.
ALTER TABLE findings ADD COLUMN agent_told_at timestamptz;
ALTER TABLE runs ADD COLUMN agent_told_at timestamptz;
UPDATE findings f SET agent_told_at = now()
  FROM agent_state s WHERE s.incident_id = f.incident_id AND f.id <= s.seen_finding_id;
UPDATE runs r SET agent_told_at = now()
  FROM proposals p, agent_state s
  WHERE p.id = r.proposal_id AND s.incident_id = p.incident_id AND r.id <= s.seen_run_id
    AND r.finished_at IS NOT NULL;
ALTER TABLE agent_state DROP COLUMN seen_finding_id, DROP COLUMN seen_run_id;
-- What the agent has not been told yet, looked up by every turn.
CREATE INDEX findings_agent_untold ON findings (incident_id, id) WHERE agent_told_at IS NULL;
CREATE INDEX runs_agent_untold ON runs (proposal_id, id) WHERE agent_told_at IS NULL AND finished_at IS NOT NULL;
