-- Pulled cores kept as the host's zstd stream (issue 16): decoding and hashing gigabytes in the bot
-- cost more CPU than the rest of the pull. sha256 stays the hash of the content as the host has it
-- (the file, or the tar docker cp makes of it), which the free run compares on the host; it is
-- null when the file was kept compressed without being decoded (too big to be checked by hash
-- there). kept_sha256 is the hash of the file as kept on the bot host; kept_as says which form;
-- content_bytes is the content's size when the pull counted it (the free run compares it with the
-- size the host listed before deleting a host file).
ALTER TABLE evidence_artifacts
  ADD COLUMN kept_as text CHECK (kept_as IN ('content', 'compressed')),
  ADD COLUMN kept_sha256 text,
  ADD COLUMN content_bytes bigint;
