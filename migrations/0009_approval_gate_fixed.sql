-- The approval gate trusts only what cannot change once written. The triggers of 0004 read a
-- proposal's approvals_required, self_approval_allowed, proposed_by, state, created_at and
-- expires_at, and an UPDATE could change any of them: with two approvers asked for and one given,
-- `SET approvals_required = 1, state = 'approved'` let the run start, and an expired proposal set
-- back to pending ran after an approval. Now:
--  * a proposal is fixed once made, all but its state (and agent_told_at, the agent's own mark),
--    and it is never deleted: its id always names the proposal that was posted;
--  * its state only moves forward along the state machine (src/approvals/machine.ts), to approved
--    only with the approvals its policy asked for, to running only with its run;
--  * the time limits hold on the database's own clock too: recorded_at is set by the triggers when
--    a proposal or an approval is inserted, whatever the client sent. The bot's clock (injected, a
--    fake one in tests) still writes created_at, expires_at and decided_at, checked against each
--    other; expires_at - created_at is the proposal's window on both clocks;
--  * approvals by the policy are taken only for pulls, in the transaction that proposed them;
--  * a run keeps its proposal, hash and start, and proposals, approvals and runs are never deleted
--    or truncated;
--  * these triggers fire even in a session that turns triggers off (session_replication_role =
--    replica, which the superuser that PGlite runs as may set).

ALTER TABLE proposals ADD COLUMN recorded_at timestamptz DEFAULT clock_timestamp();
-- The transaction that made the proposal (txid_current()): the only one where the policy approves.
ALTER TABLE proposals ADD COLUMN recorded_xid bigint;
ALTER TABLE approvals ADD COLUMN recorded_at timestamptz DEFAULT clock_timestamp();
-- Rows made before this version have only the bot's clock.
UPDATE proposals SET recorded_at = created_at;
ALTER TABLE approvals DISABLE TRIGGER approvals_append_only;
UPDATE approvals SET recorded_at = decided_at;
ALTER TABLE approvals ENABLE TRIGGER approvals_append_only;
ALTER TABLE proposals ALTER COLUMN recorded_at SET NOT NULL;
ALTER TABLE approvals ALTER COLUMN recorded_at SET NOT NULL;

-- What the approvals of a proposal add up to: distinct approvers that count under its policy
-- (not the proposer when self-approval is off), given within its window on the database's clock;
-- when the last of them was recorded; and how many rejections it has (anyone's).
CREATE FUNCTION proposal_tally(p proposals, OUT approvers integer, OUT last_approval timestamptz,
  OUT rejections integer) LANGUAGE plpgsql AS $$
BEGIN
  SELECT count(DISTINCT a.decided_by) FILTER (WHERE a.decision = 'approved' AND counts),
         max(a.recorded_at) FILTER (WHERE a.decision = 'approved' AND counts),
         count(*) FILTER (WHERE a.decision = 'rejected')
    INTO approvers, last_approval, rejections
    FROM (SELECT *, (p.self_approval_allowed OR decided_by <> p.proposed_by)
                    AND recorded_at < p.recorded_at + (p.expires_at - p.created_at) AS counts
            FROM approvals
           WHERE proposal_id = p.id AND sha256 = p.sha256) a;
END;
$$;

-- A proposal starts pending, with a window of at most a day (the policy's longest), and the
-- database's clock and transaction are recorded whatever the client sent.
CREATE FUNCTION proposals_start_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.recorded_at := clock_timestamp();
  NEW.recorded_xid := txid_current();
  IF NEW.state <> 'pending' THEN
    RAISE EXCEPTION 'proposal refused: a proposal starts pending, not %', NEW.state;
  END IF;
  IF NOT (NEW.expires_at > NEW.created_at AND NEW.expires_at - NEW.created_at <= interval '1 day') THEN
    RAISE EXCEPTION 'proposal refused: it must expire after it is made and within a day (% to %)',
      NEW.created_at, NEW.expires_at;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER proposals_start_pending BEFORE INSERT ON proposals
  FOR EACH ROW EXECUTE FUNCTION proposals_start_pending();

-- Everything but the state (and the agent's mark) is fixed; the state moves forward only.
CREATE FUNCTION proposals_are_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed text;
  t record;
BEGIN
  IF NEW.text <> OLD.text OR NEW.sha256 <> OLD.sha256 OR NEW.kind <> OLD.kind OR NEW.target <> OLD.target THEN
    RAISE EXCEPTION 'proposal % is fixed: an edit is a new proposal', OLD.id;
  END IF;
  SELECT string_agg(n.key, ', ' ORDER BY n.key) INTO changed
    FROM jsonb_each(to_jsonb(NEW)) n
   WHERE n.key NOT IN ('state', 'agent_told_at') AND n.value IS DISTINCT FROM (to_jsonb(OLD) -> n.key);
  IF changed IS NOT NULL THEN
    RAISE EXCEPTION 'proposal % is fixed: % cannot change once it is proposed', OLD.id, changed;
  END IF;
  IF NEW.state IS DISTINCT FROM OLD.state THEN
    IF (OLD.state, NEW.state) NOT IN (('pending', 'approved'), ('pending', 'rejected'), ('pending', 'expired'),
        ('approved', 'running'), ('approved', 'rejected'), ('approved', 'expired'),
        ('running', 'done'), ('running', 'failed')) THEN
      RAISE EXCEPTION 'proposal % is %: it cannot become %', OLD.id, OLD.state, NEW.state;
    END IF;
    IF NEW.state = 'approved' THEN
      SELECT * INTO t FROM proposal_tally(OLD);
      IF t.rejections > 0 OR t.approvers < OLD.approvals_required THEN
        RAISE EXCEPTION 'proposal % cannot be approved: % of % approvals, % rejection(s)',
          OLD.id, t.approvers, OLD.approvals_required, t.rejections;
      END IF;
    END IF;
    IF NEW.state = 'running' AND NOT EXISTS (SELECT 1 FROM runs WHERE proposal_id = OLD.id) THEN
      RAISE EXCEPTION 'proposal % cannot be running: it has no run', OLD.id;
    END IF;
  END IF;
  RETURN NEW;
END;
$$;
DROP TRIGGER proposals_text_is_fixed ON proposals;
DROP FUNCTION proposals_text_is_fixed();
CREATE TRIGGER proposals_are_fixed BEFORE UPDATE ON proposals
  FOR EACH ROW EXECUTE FUNCTION proposals_are_fixed();

CREATE FUNCTION proposals_are_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'proposals are kept: % is not allowed', TG_OP;
END;
$$;
CREATE TRIGGER proposals_kept BEFORE DELETE ON proposals
  FOR EACH ROW EXECUTE FUNCTION proposals_are_kept();
CREATE TRIGGER proposals_no_truncate BEFORE TRUNCATE ON proposals
  FOR EACH STATEMENT EXECUTE FUNCTION proposals_are_kept();
CREATE TRIGGER approvals_no_truncate BEFORE TRUNCATE ON approvals
  FOR EACH STATEMENT EXECUTE FUNCTION approvals_are_append_only();

-- A decision is taken while the proposal is open, on both clocks; an approval counts under the
-- proposal's own policy. The proposal is locked, so a run cannot start past a rejection unseen.
CREATE OR REPLACE FUNCTION approvals_only_while_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  p proposals%ROWTYPE;
BEGIN
  SELECT * INTO p FROM proposals WHERE id = NEW.proposal_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'decision refused: there is no proposal %', NEW.proposal_id;
  END IF;
  NEW.recorded_at := clock_timestamp();
  -- Pending proposals take decisions; an approved one that has not started can still be rejected.
  IF NOT (p.state = 'pending' OR (p.state = 'approved' AND NEW.decision = 'rejected')) THEN
    RAISE EXCEPTION 'decision refused: proposal % is %', NEW.proposal_id, p.state;
  END IF;
  IF (NEW.via = 'policy') <> (NEW.decided_by ~ '^policy(#[0-9]+)?$') THEN
    RAISE EXCEPTION 'decision refused: only the policy decides via policy, and under its own name';
  END IF;
  IF NEW.via = 'policy' AND NOT (NEW.decision = 'approved' AND p.kind = 'pull' AND p.recorded_xid = txid_current()) THEN
    RAISE EXCEPTION 'approval refused: the policy approves only pulls, when they are proposed (proposal %)',
      NEW.proposal_id;
  END IF;
  IF NEW.decision = 'approved' THEN
    IF NOT p.self_approval_allowed AND NEW.decided_by = p.proposed_by THEN
      RAISE EXCEPTION 'approval refused: % proposed %, and its policy needs someone else to approve it',
        NEW.decided_by, NEW.proposal_id;
    END IF;
    IF NEW.decided_at < p.created_at THEN
      RAISE EXCEPTION 'approval refused: decided at %, before proposal % was made at %',
        NEW.decided_at, NEW.proposal_id, p.created_at;
    END IF;
    IF p.expires_at <= NEW.decided_at THEN
      RAISE EXCEPTION 'approval refused: proposal % expired at %', NEW.proposal_id, p.expires_at;
    END IF;
    IF p.recorded_at + (p.expires_at - p.created_at) <= NEW.recorded_at THEN
      RAISE EXCEPTION 'approval refused: proposal % expired at % by the database''s clock',
        NEW.proposal_id, p.recorded_at + (p.expires_at - p.created_at);
    END IF;
  END IF;
  RETURN NEW;
END;
$$;

-- A run needs its proposal approved, the approvals its policy asked for and no rejection, and it
-- starts within the window after the last approval, by the database's clock.
CREATE OR REPLACE FUNCTION runs_require_approval() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  p proposals%ROWTYPE;
  t record;
BEGIN
  SELECT * INTO p FROM proposals WHERE id = NEW.proposal_id FOR UPDATE;
  IF NOT FOUND OR p.sha256 <> NEW.sha256 THEN
    RAISE EXCEPTION 'run refused: proposal % has no text with hash %', NEW.proposal_id, NEW.sha256;
  END IF;
  SELECT * INTO t FROM proposal_tally(p);
  IF t.rejections > 0 THEN
    RAISE EXCEPTION 'run refused: proposal % was rejected', NEW.proposal_id;
  END IF;
  IF t.approvers < p.approvals_required THEN
    RAISE EXCEPTION 'run refused: proposal % has % of % approvals of hash %',
      NEW.proposal_id, t.approvers, p.approvals_required, NEW.sha256;
  END IF;
  IF p.state <> 'approved' THEN
    RAISE EXCEPTION 'run refused: proposal % is %, not approved', NEW.proposal_id, p.state;
  END IF;
  IF t.last_approval + (p.expires_at - p.created_at) < clock_timestamp() THEN
    RAISE EXCEPTION 'run refused: proposal % was approved at %, and not started within %',
      NEW.proposal_id, t.last_approval, p.expires_at - p.created_at;
  END IF;
  NEW.started_at := clock_timestamp();
  RETURN NEW;
END;
$$;

-- A run keeps its proposal, hash and start; a finished run stays finished; none is removed.
CREATE FUNCTION runs_are_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id <> OLD.id OR NEW.proposal_id <> OLD.proposal_id OR NEW.sha256 <> OLD.sha256
     OR NEW.started_at <> OLD.started_at THEN
    RAISE EXCEPTION 'run % is fixed: its proposal, hash and start cannot change', OLD.id;
  END IF;
  IF OLD.state <> 'running' AND NEW.state <> OLD.state THEN
    RAISE EXCEPTION 'run % is %: it cannot become %', OLD.id, OLD.state, NEW.state;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER runs_are_fixed BEFORE UPDATE ON runs
  FOR EACH ROW EXECUTE FUNCTION runs_are_fixed();

CREATE FUNCTION runs_are_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'runs are kept: % is not allowed', TG_OP;
END;
$$;
CREATE TRIGGER runs_kept BEFORE DELETE ON runs
  FOR EACH ROW EXECUTE FUNCTION runs_are_kept();
CREATE TRIGGER runs_no_truncate BEFORE TRUNCATE ON runs
  FOR EACH STATEMENT EXECUTE FUNCTION runs_are_kept();

-- Triggers fire ALWAYS: a session with session_replication_role = replica (no DDL, and allowed to
-- the superuser PGlite runs as) skips ordinary triggers, foreign keys included: the triggers above
-- look the proposal up themselves, and count only approvals and runs of its hash.
ALTER TABLE proposals ENABLE ALWAYS TRIGGER proposals_start_pending;
ALTER TABLE proposals ENABLE ALWAYS TRIGGER proposals_are_fixed;
ALTER TABLE proposals ENABLE ALWAYS TRIGGER proposals_kept;
ALTER TABLE proposals ENABLE ALWAYS TRIGGER proposals_no_truncate;
ALTER TABLE approvals ENABLE ALWAYS TRIGGER approvals_only_while_pending;
ALTER TABLE approvals ENABLE ALWAYS TRIGGER approvals_append_only;
ALTER TABLE approvals ENABLE ALWAYS TRIGGER approvals_no_truncate;
ALTER TABLE runs ENABLE ALWAYS TRIGGER runs_require_approval;
ALTER TABLE runs ENABLE ALWAYS TRIGGER runs_are_fixed;
ALTER TABLE runs ENABLE ALWAYS TRIGGER runs_kept;
ALTER TABLE runs ENABLE ALWAYS TRIGGER runs_no_truncate;

-- The functions find their tables in the schema they were made in, never first in pg_temp, where
-- a session's temporary table named proposals would otherwise stand in for the real one. A later
-- CREATE OR REPLACE of one of them drops this setting: it must set search_path again.
DO $$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY['proposal_tally(proposals)', 'proposals_start_pending()', 'proposals_are_fixed()',
      'proposals_are_kept()', 'approvals_only_while_pending()', 'approvals_are_append_only()',
      'runs_require_approval()', 'runs_are_fixed()', 'runs_are_kept()'] LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
  END LOOP;
END;
$$;
