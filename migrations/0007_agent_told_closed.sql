-- The agent hears when a proposal of its own closes without running (rejected, or expired before
-- an approval or before its run started): the turn that tells the model marks the proposal, in
-- the same transaction as the message, so the model is told once however often it is woken.
ALTER TABLE proposals ADD COLUMN agent_told_at timestamptz;
-- Proposals that closed before this version are marked as they are: a deploy does not wake the
-- agent of every incident about decisions made long ago.
UPDATE proposals SET agent_told_at = now() WHERE proposed_by = 'agent' AND state IN ('rejected', 'expired');
-- What the agent has not been told yet: few rows, looked up by every turn and every sweep.
CREATE INDEX proposals_closed_untold ON proposals (incident_id)
  WHERE proposed_by = 'agent' AND state IN ('rejected', 'expired') AND agent_told_at IS NULL;
