-- When an api last accepted each API key, for `panelflow key list|show`. Written by the api processes in one
-- batched UPDATE per `key_last_use_flush_s` (and at shutdown), never once per request
-- (shared/ingress/key_usage.py). NULL: not used since it was created (or since this column exists).
-- Nullable without a default: existing rows are not rewritten.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS last_used_at TIMESTAMPTZ;
