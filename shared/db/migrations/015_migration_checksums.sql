-- The SHA-256 of each migration file as it was applied, so a file edited afterwards is detected
-- (`panelflow migrate status`, `panelflow migrate`). Rows applied before this migration get the checksum of the
-- file the upgrading release ships (recorded by `panelflow migrate` right after this migration).
ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum TEXT;
