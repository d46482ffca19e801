-- Providers that honour `request_id` on `add` (the same id twice buys one order, answered with its id): for
-- them an unknown outcome is resolved by sending the same request again instead of parking the order.
-- Off by default: only an operator who checked the provider's behaviour turns it on.
ALTER TABLE providers ADD COLUMN idempotent BOOLEAN NOT NULL DEFAULT FALSE;

-- The submission attempt that was claimed and whose upstream request has provably not started yet. The claim
-- sets it to the new attempt number (committed with the claim); it is cleared, and that committed, just before
-- the request's first byte is written. A stale 'submitting' row whose attempt is still here was never sent:
-- it goes back to 'pending'. NULL (rows claimed by an older release included) means "may have been sent".
ALTER TABLE orders ADD COLUMN submit_unsent_attempt INTEGER;
