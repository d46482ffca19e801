-- Whether any submission attempt of the order may have reached its upstream: set for good as soon as an
-- attempt's send mark (`submit_unsent_attempt`) is cleared, i.e. just before its request is written, by a
-- trigger, so every writer of the mark keeps it true. The api cancels and refunds a pending order at once only
-- while it is false (and the latest attempt's mark is in place); otherwise the order may exist upstream and its
-- cancel goes through the worker.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS submit_maybe_sent BOOLEAN NOT NULL DEFAULT FALSE;

CREATE OR REPLACE FUNCTION orders_note_maybe_sent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.submit_maybe_sent := TRUE;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS orders_note_maybe_sent ON orders;
CREATE TRIGGER orders_note_maybe_sent BEFORE UPDATE OF submit_unsent_attempt ON orders
    FOR EACH ROW
    WHEN (OLD.submit_unsent_attempt IS NOT NULL AND NEW.submit_unsent_attempt IS NULL)
    EXECUTE FUNCTION orders_note_maybe_sent();

-- Orders not settled yet whose earlier attempts left no trace: any attempt but a single never-sent one counts
-- as maybe sent (orders already bought or ended are never cancelled at once, so they are left alone).
UPDATE orders SET submit_maybe_sent = TRUE
WHERE status IN ('pending', 'submitting', 'unknown')
  AND (submit_attempts > 1 OR (submit_attempts = 1 AND submit_unsent_attempt IS DISTINCT FROM 1));
