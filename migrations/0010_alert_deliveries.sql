-- Every alert webhook delivery that passed authentication, with its body exactly as received:
-- bytes, so a body that is not UTF-8 or holds a NUL is kept too (text and jsonb refuse both), and
-- stored before it is parsed, so a body the bot cannot read is still on record. Until now the body
-- was copied as text into each alert row of the delivery; rows from before keep it there
-- (alerts.body), later rows point at their delivery instead.
CREATE TABLE alert_deliveries (
  id bigserial PRIMARY KEY,
  source text NOT NULL CHECK (source IN ('alertmanager', 'grafana', 'generic')),
  received_at timestamptz NOT NULL DEFAULT now(),
  body bytea NOT NULL,
  -- NULL until the alerts are stored (a delivery whose transaction failed stays NULL; the sender
  -- was answered 503 and sends it again); 'invalid' when nothing in it could be used.
  outcome text CHECK (outcome IN ('accepted', 'invalid')),
  error text,
  accepted integer NOT NULL DEFAULT 0,
  duplicates integer NOT NULL DEFAULT 0,
  -- Alerts of the delivery that could not be used: [{"index": 2, "error": "..."}], the first 100.
  rejected jsonb NOT NULL DEFAULT '[]'::jsonb,
  rejected_count integer NOT NULL DEFAULT 0
);
ALTER TABLE alerts ADD COLUMN delivery_id bigint REFERENCES alert_deliveries (id);
ALTER TABLE alerts ALTER COLUMN body DROP NOT NULL;
CREATE INDEX alerts_by_delivery ON alerts (delivery_id);
