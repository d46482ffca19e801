-- panelflow 002: what the worker needs beyond 001 (submission bookkeeping, cheap claims, low-balance alerts).

-- When the current upstream `add` call began: a 'submitting' row older than the timeout belongs to a worker
-- that died mid-call, and is parked ('unknown'), never put back to 'pending'.
ALTER TABLE orders ADD COLUMN submit_started_at TIMESTAMPTZ;
-- When the first accepted upstream `add` was recorded (the age that status-poll backoff grows with).
ALTER TABLE orders ADD COLUMN submitted_at TIMESTAMPTZ;
-- When the reseller's cancel was forwarded upstream (forwarded once, whatever redeliveries occur).
ALTER TABLE orders ADD COLUMN cancel_forwarded_at TIMESTAMPTZ;
ALTER TABLE orders ADD COLUMN polls INTEGER NOT NULL DEFAULT 0;

CREATE INDEX orders_submitting_idx ON orders (submit_started_at) WHERE status = 'submitting';
-- Status polling claims the oldest due in-flight orders; pending ones are kept out of this index.
CREATE INDEX orders_poll_idx ON orders (next_attempt_at) WHERE status IN ('in_progress', 'processing');
CREATE INDEX orders_cancel_due_idx ON orders (id)
    WHERE cancel_requested_at IS NOT NULL AND cancel_forwarded_at IS NULL
      AND status IN ('in_progress', 'processing');

ALTER TABLE refills ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refills ADD COLUMN submit_started_at TIMESTAMPTZ;
CREATE INDEX refills_due_idx ON refills (next_attempt_at) WHERE status IN ('pending', 'in_progress');
CREATE INDEX refills_submitting_idx ON refills (submit_started_at) WHERE status = 'submitting';

-- balance.low fires once per crossing: the worker sets this to the threshold it alerted under; the trigger
-- re-arms the alert (NULL) as soon as any balance change (topup, refund) brings the balance back to it.
ALTER TABLE accounts ADD COLUMN low_balance_alerted_under NUMERIC(20, 5);

CREATE FUNCTION accounts_rearm_low_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.low_balance_alerted_under := NULL;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_rearm_low_balance BEFORE UPDATE OF balance ON accounts
    FOR EACH ROW
    WHEN (OLD.low_balance_alerted_under IS NOT NULL AND NEW.balance >= OLD.low_balance_alerted_under)
    EXECUTE FUNCTION accounts_rearm_low_balance();
