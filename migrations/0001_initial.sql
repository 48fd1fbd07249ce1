-- The system of record: incidents and everything that happens in them.
-- Tables live in the schema the store is opened with (search_path); this file names none.

CREATE TABLE incidents (
  id bigserial PRIMARY KEY,
  -- Grouping: one open incident per host and problem (see the partial unique index below).
  group_key text NOT NULL,
  host text NOT NULL,
  problem text NOT NULL,
  title text NOT NULL,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'investigating', 'mitigated', 'resolved')),
  severity text NOT NULL DEFAULT 'warning' CHECK (severity IN ('critical', 'warning', 'info')),
  commander text,
  channel text,
  root_ts text,
  -- An alert that fires again after resolution opens a new incident linked to the earlier one.
  previous_incident_id bigint REFERENCES incidents (id),
  opened_by text NOT NULL,
  opened_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz,
  CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE UNIQUE INDEX incidents_one_open_per_group ON incidents (group_key) WHERE status <> 'resolved';
CREATE INDEX incidents_by_host ON incidents (host, opened_at DESC);

-- Every alert delivery, stored before the webhook answers; valid or not, as received.
CREATE TABLE alerts (
  id bigserial PRIMARY KEY,
  source text NOT NULL CHECK (source IN ('alertmanager', 'grafana', 'generic')),
  received_at timestamptz NOT NULL DEFAULT now(),
  body text NOT NULL,
  payload jsonb,
  valid boolean NOT NULL,
  error text,
  -- Deduplicates at-least-once deliveries (Alertmanager HA): source, fingerprint, status, start.
  dedup_key text UNIQUE,
  fingerprint text,
  status text CHECK (status IN ('firing', 'resolved')),
  host text,
  problem text,
  incident_id bigint REFERENCES incidents (id)
);
CREATE INDEX alerts_by_incident ON alerts (incident_id, received_at);

-- Messages the bot posted, so a retry never posts twice and a root can be updated in place.
CREATE TABLE thread_messages (
  id bigserial PRIMARY KEY,
  incident_id bigint NOT NULL REFERENCES incidents (id),
  dedup_key text NOT NULL UNIQUE,
  role text NOT NULL CHECK (role IN ('root', 'reply')),
  channel text NOT NULL,
  ts text,
  body jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  posted_at timestamptz
);
CREATE INDEX thread_messages_by_incident ON thread_messages (incident_id, created_at);

-- Collection, analysis and agent work, as the incident timeline shows it (the queue is pg-boss's).
CREATE TABLE jobs (
  id bigserial PRIMARY KEY,
  incident_id bigint REFERENCES incidents (id),
  kind text NOT NULL,
  queue_job_id text UNIQUE,
  state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  input jsonb NOT NULL DEFAULT '{}'::jsonb,
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);

CREATE TABLE findings (
  id bigserial PRIMARY KEY,
  incident_id bigint NOT NULL REFERENCES incidents (id),
  job_id bigint REFERENCES jobs (id),
  kind text NOT NULL,
  severity text NOT NULL DEFAULT 'info' CHECK (severity IN ('critical', 'warning', 'info')),
  title text NOT NULL,
  -- Redacted before it is stored: findings go to Slack and to the model.
  body jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX findings_by_incident ON findings (incident_id, created_at);

-- Evidence brought home (cores, logs), kept on the bot host; only its findings leave it.
CREATE TABLE evidence_artifacts (
  id bigserial PRIMARY KEY,
  incident_id bigint NOT NULL REFERENCES incidents (id),
  host text NOT NULL,
  container text,
  remote_path text NOT NULL,
  local_path text,
  size_bytes bigint,
  sha256 text,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'transferring', 'complete', 'failed')),
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);

-- What the agent (or a human) proposes to run, identified by the hash of its canonical form.
CREATE TABLE proposals (
  id bigserial PRIMARY KEY,
  incident_id bigint NOT NULL REFERENCES incidents (id),
  kind text NOT NULL CHECK (kind IN ('script', 'sql')),
  target text NOT NULL,
  text text NOT NULL,
  sha256 text NOT NULL,
  why text NOT NULL DEFAULT '',
  expects text NOT NULL DEFAULT '',
  proposed_by text NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected', 'expired', 'running', 'done', 'failed')),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  UNIQUE (id, sha256)
);

CREATE TABLE approvals (
  id bigserial PRIMARY KEY,
  proposal_id bigint NOT NULL,
  sha256 text NOT NULL,
  decision text NOT NULL CHECK (decision IN ('approved', 'rejected')),
  decided_by text NOT NULL,
  via text NOT NULL CHECK (via IN ('button', 'reaction', 'cli')),
  decided_at timestamptz NOT NULL DEFAULT now(),
  -- An approval is of one exact text: the proposal and the hash it was shown with.
  FOREIGN KEY (proposal_id, sha256) REFERENCES proposals (id, sha256),
  UNIQUE (proposal_id, decided_by)
);

-- Append-only: every proposal, approval, run and result, who and when.
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  action text NOT NULL,
  incident_id bigint REFERENCES incidents (id),
  subject jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_by_incident ON audit_log (incident_id, at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
