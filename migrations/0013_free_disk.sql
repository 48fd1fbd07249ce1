-- Freeing the disk (issue 17): once a core is home whole, a proposal of kind 'free' deletes it on
-- the host. The runner checks first that the file there is still the one that was pulled, so the
-- collection keeps what it saw of each core: its size and mtime (remote_size_bytes; size_bytes
-- becomes the pulled size), the file's device:inode on the host, and the container's writable
-- layer on the host, through which a stopped container's core is deleted. remote_deleted_at is set
-- when the run removed it on the host, so no later proposal names it again (deleted_at is the
-- local copy's, removed by retention).
ALTER TABLE evidence_artifacts
  ADD COLUMN remote_size_bytes bigint,
  ADD COLUMN remote_mtime timestamptz,
  ADD COLUMN file_id text,
  ADD COLUMN layer_dir text,
  ADD COLUMN remote_deleted_at timestamptz;

-- A 'free' proposal deletes: like a script, it runs only with the approvals of its exact text
-- (the gate of 0009 approves by policy pulls alone).
ALTER TABLE proposals DROP CONSTRAINT proposals_kind_check;
ALTER TABLE proposals ADD CONSTRAINT proposals_kind_check CHECK (kind IN ('script', 'sql', 'pull', 'free'));
