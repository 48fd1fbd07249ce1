-- The agent: its conversation with the model per incident, kept in the database so a restarted
-- bot continues where it was, and what it has used of its budget.

CREATE TABLE agent_messages (
  id bigserial PRIMARY KEY,
  incident_id bigint NOT NULL REFERENCES incidents (id),
  role text NOT NULL CHECK (role IN ('user', 'assistant')),
  -- The Messages API content blocks, as sent or received (tool results are redacted before).
  content jsonb NOT NULL,
  -- The model's usage for an assistant message (input, output, cache tokens); null for a user turn.
  usage jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_messages_by_incident ON agent_messages (incident_id, id);

CREATE TABLE agent_state (
  incident_id bigint PRIMARY KEY REFERENCES incidents (id),
  -- Model calls and tokens (input, output and cache) spent on this incident.
  turns integer NOT NULL DEFAULT 0,
  tokens bigint NOT NULL DEFAULT 0,
  -- What the agent has already been told: findings and runs up to these ids.
  seen_finding_id bigint NOT NULL DEFAULT 0,
  seen_run_id bigint NOT NULL DEFAULT 0,
  -- Set once when the budget ran out (the thread is told then).
  budget_spent_at timestamptz,
  -- One turn at a time per incident, across bot processes: a turn holds this lease.
  lease_until timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- What a job produced beyond its findings (the analysis: its ranked correlations, for the agent).
ALTER TABLE jobs ADD COLUMN result jsonb;
