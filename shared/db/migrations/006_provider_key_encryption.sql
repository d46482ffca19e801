-- Our API keys at the providers are kept encrypted (Fernet, PANELFLOW_PROVIDER_KEY_ENCRYPTION_KEY) in
-- api_key_enc; api_key (plaintext) is only ever read to encrypt it. SQL cannot encrypt, so the rows this
-- migration finds are encrypted by the step `panelflow migrate` runs right after the migrations (and by
-- `panelflow provider encrypt-keys`), which moves the key into api_key_enc and empties api_key.
ALTER TABLE providers ALTER COLUMN api_key DROP NOT NULL;
ALTER TABLE providers ADD COLUMN api_key_enc TEXT;
-- A Fernet token (version byte 0x80) always starts with "gAAAAA": a plaintext key written here by mistake fails.
ALTER TABLE providers ADD CONSTRAINT providers_api_key_enc_is_fernet CHECK (api_key_enc LIKE 'gAAAAA%');
ALTER TABLE providers ADD CONSTRAINT providers_api_key_present CHECK (api_key IS NOT NULL OR api_key_enc IS NOT NULL);
