-- Compatibility profile of an API key (shared/auth/keys.py PROFILES): 'strict' (the contract as written) or
-- 'classic' (programs written for classic panels: add without request_id, errors answered with HTTP 200).
-- A constant default: existing keys become 'strict' without a table rewrite.
ALTER TABLE api_keys ADD COLUMN profile TEXT NOT NULL DEFAULT 'strict'
    CONSTRAINT api_keys_profile_check CHECK (profile IN ('strict', 'classic'));
