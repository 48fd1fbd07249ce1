-- The approval gate, enforced by the database and not only by the code: nothing runs without a
-- recorded approval of the exact text (its hash) by enough people, before it expired, and
-- nothing runs twice.

-- Pulling evidence off a host is itself a proposal (files and bytes are its text).
ALTER TABLE proposals DROP CONSTRAINT proposals_kind_check;
ALTER TABLE proposals ADD CONSTRAINT proposals_kind_check CHECK (kind IN ('script', 'sql', 'pull'));
-- How many distinct approvers it needs (the policy at the time it was proposed), and whether
-- the person who asked for it may approve it.
ALTER TABLE proposals ADD COLUMN approvals_required integer NOT NULL DEFAULT 1 CHECK (approvals_required BETWEEN 1 AND 5);
ALTER TABLE proposals ADD COLUMN self_approval_allowed boolean NOT NULL DEFAULT true;
-- 'policy' records an approval made by the policy file (automatic pulls), never a person.
ALTER TABLE approvals DROP CONSTRAINT approvals_via_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_via_check CHECK (via IN ('button', 'reaction', 'cli', 'policy'));
-- An approver who approved (one of two) may still reject: one row per person and decision.
ALTER TABLE approvals DROP CONSTRAINT approvals_proposal_id_decided_by_key;
ALTER TABLE approvals ADD CONSTRAINT approvals_one_per_person UNIQUE (proposal_id, decided_by, decision);

CREATE TABLE runs (
  id bigserial PRIMARY KEY,
  -- One run per proposal, ever: a double click, two approvers at once or a Slack retry run it once.
  proposal_id bigint NOT NULL UNIQUE,
  sha256 text NOT NULL,
  state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'succeeded', 'failed')),
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  exit_code integer,
  output_bytes bigint,
  result jsonb NOT NULL DEFAULT '{}'::jsonb,
  error text,
  FOREIGN KEY (proposal_id, sha256) REFERENCES proposals (id, sha256)
);

CREATE FUNCTION runs_require_approval() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  p proposals%ROWTYPE;
  approved integer;
  refused integer;
BEGIN
  SELECT * INTO p FROM proposals WHERE id = NEW.proposal_id FOR UPDATE;
  IF NOT FOUND OR p.sha256 <> NEW.sha256 THEN
    RAISE EXCEPTION 'run refused: proposal % has no text with hash %', NEW.proposal_id, NEW.sha256;
  END IF;
  SELECT count(*) FILTER (WHERE decision = 'approved'), count(*) FILTER (WHERE decision = 'rejected')
    INTO approved, refused
    FROM approvals
   WHERE proposal_id = NEW.proposal_id AND sha256 = NEW.sha256
     AND (p.self_approval_allowed OR decided_by <> p.proposed_by);
  IF refused > 0 THEN
    RAISE EXCEPTION 'run refused: proposal % was rejected', NEW.proposal_id;
  END IF;
  IF approved < p.approvals_required THEN
    RAISE EXCEPTION 'run refused: proposal % has % of % approvals of hash %',
      NEW.proposal_id, approved, p.approvals_required, NEW.sha256;
  END IF;
  IF p.state <> 'approved' THEN
    RAISE EXCEPTION 'run refused: proposal % is %, not approved', NEW.proposal_id, p.state;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER runs_require_approval BEFORE INSERT ON runs
  FOR EACH ROW EXECUTE FUNCTION runs_require_approval();

-- An approval after the proposal expired, or of a proposal no longer pending, is refused too
-- (a rejection of an approved proposal that has not started yet is still taken).
CREATE FUNCTION approvals_only_while_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  p proposals%ROWTYPE;
BEGIN
  SELECT * INTO p FROM proposals WHERE id = NEW.proposal_id;
  -- Pending proposals take decisions; an approved one that has not started can still be rejected.
  IF NOT (p.state = 'pending' OR (p.state = 'approved' AND NEW.decision = 'rejected')) THEN
    RAISE EXCEPTION 'decision refused: proposal % is %', NEW.proposal_id, p.state;
  END IF;
  IF NEW.decision = 'approved' AND p.expires_at <= NEW.decided_at THEN
    RAISE EXCEPTION 'approval refused: proposal % expired at %', NEW.proposal_id, p.expires_at;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER approvals_only_while_pending BEFORE INSERT ON approvals
  FOR EACH ROW EXECUTE FUNCTION approvals_only_while_pending();

-- Approvals are history: never edited, never removed.
CREATE FUNCTION approvals_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'approvals are append-only: % is not allowed', TG_OP;
END;
$$;
CREATE TRIGGER approvals_append_only BEFORE UPDATE OR DELETE ON approvals
  FOR EACH ROW EXECUTE FUNCTION approvals_are_append_only();

-- A proposal's text and hash never change after it is made: an edit is a new proposal.
CREATE FUNCTION proposals_text_is_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.text <> OLD.text OR NEW.sha256 <> OLD.sha256 OR NEW.kind <> OLD.kind OR NEW.target <> OLD.target THEN
    RAISE EXCEPTION 'proposal % is fixed: an edit is a new proposal', OLD.id;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER proposals_text_is_fixed BEFORE UPDATE ON proposals
  FOR EACH ROW EXECUTE FUNCTION proposals_text_is_fixed();

CREATE INDEX proposals_by_incident ON proposals (incident_id, created_at);

-- Evidence pulled by a run, and its retention: the file is deleted after the retention period,
-- the row (size, sha256, where it came from) stays.
ALTER TABLE evidence_artifacts ADD COLUMN run_id bigint REFERENCES runs (id);
ALTER TABLE evidence_artifacts ADD COLUMN error text;
ALTER TABLE evidence_artifacts ADD COLUMN deleted_at timestamptz;
