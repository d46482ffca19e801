-- Outbox relay throughput (see shared/messaging/relay.py and shared/ordering/placement.py).

-- The claim query's order, served by an index: an ordered scan stops after one batch and marks the entries of
-- rows published meanwhile as dead as it passes them, where a scan of (created_at) plus a sort visits every
-- entry left behind since the last vacuum, every time.
CREATE INDEX outbox_claim_idx ON outbox (attempts, created_at) WHERE published_at IS NULL;
DROP INDEX outbox_unpublished_idx;

-- A session may skip the NOTIFY (`SET panelflow.outbox_notify = 'off'`): a transaction that notified holds a
-- database-wide lock from its commit through its WAL flush, so notifying transactions commit one at a time.
-- The api's order placer does, and wakes the relay of its own process directly.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('panelflow.outbox_notify', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify('panelflow_outbox', '');
    END IF;
    RETURN NULL;
END $$;
