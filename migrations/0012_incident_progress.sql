-- One status message per incident, edited in place: collection, then the pull, then the analysis,
-- each a line with its counts (src/slack/status-message.ts). Each phase keeps its latest line
-- here, so whichever phase writes renders all of them; a line ranked below the one a phase already
-- holds is refused (a progress draw finishing after the final count). Every rendering takes the
-- next value of incident_progress_edits as its edit rank after writing its own line, so the
-- highest-ranked rendering, which the message keeps, read every line written before it.
CREATE TABLE incident_progress (
  incident_id bigint NOT NULL REFERENCES incidents (id),
  phase text NOT NULL,
  position smallint NOT NULL,
  rank bigint NOT NULL DEFAULT 0,
  line text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (incident_id, phase)
);
CREATE SEQUENCE incident_progress_edits;
