-- Retention: the purge walks the events oldest first (shared/db/webhook_retention.py). Their deliveries are
-- found by webhook_deliveries_event_idx and the attempts by webhook_attempts_delivery_idx (both exist).
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at, id);
