-- Messages of the channel that belong to no incident (issue 17: the fleet at a glance): one row per
-- message key, the one message edited in place. A sender claims the row (claimed_by, claimed_at)
-- while it posts or edits, so two processes never post it twice nor edit it at once; hash is the
-- rendering Slack has, so a drain that changes nothing calls no chat.update.
CREATE TABLE channel_messages (
  key text PRIMARY KEY,
  channel text NOT NULL,
  ts text,
  hash text,
  claimed_by text,
  claimed_at timestamptz,
  last_error text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
