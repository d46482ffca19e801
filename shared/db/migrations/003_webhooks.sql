-- Webhooks: subscribed endpoints, the events they may receive, one delivery per (endpoint, event) and the
-- log of every attempt. Retries live here (`next_attempt_at`), not in the broker.

CREATE TABLE webhook_endpoints (
    id                    BIGSERIAL PRIMARY KEY,
    account_id            BIGINT NOT NULL REFERENCES accounts (id),
    url                   TEXT NOT NULL,
    events                TEXT[] NOT NULL,
    secret_enc            TEXT NOT NULL,           -- Fernet token: we must sign with it, so not a hash
    old_secret_enc        TEXT,                    -- the previous secret, signing beside the new one
    old_secret_expires_at TIMESTAMPTZ,
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason       TEXT,
    disabled_at           TIMESTAMPTZ,
    failing_since         TIMESTAMPTZ,             -- first failure since the last success
    rate_tat              TIMESTAMPTZ,             -- GCRA "theoretical arrival time" of the rate limit
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_account_idx ON webhook_endpoints (account_id);

-- Every subscriber event received, kept so that deliveries can be retried and replayed.
CREATE TABLE webhook_events (
    id          UUID PRIMARY KEY,                  -- the outbox event id; also the `webhook-id` header
    account_id  BIGINT NOT NULL,
    type        TEXT NOT NULL,
    data        JSONB NOT NULL,                    -- the body's "data"
    endpoint_id BIGINT,                            -- set for `webhook.test`: only that endpoint receives it
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now() -- the body's "timestamp"
);
CREATE INDEX webhook_events_account_idx ON webhook_events (account_id, created_at);

CREATE TABLE webhook_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    endpoint_id     BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        UUID NOT NULL REFERENCES webhook_events (id),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,    -- every attempt ever made, replays included
    step            INTEGER NOT NULL DEFAULT 0,    -- position in the retry schedule; a replay restarts it
    next_attempt_at TIMESTAMPTZ,                   -- due time, or the lease's end while being sent
    lease_token     UUID,                          -- the claim of the dispatcher sending it
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_pending_idx ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    id            BIGSERIAL PRIMARY KEY,
    delivery_id   BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id   BIGINT NOT NULL,
    attempt       INTEGER NOT NULL,
    status_code   INTEGER,
    latency_ms    INTEGER NOT NULL,
    error         TEXT,
    response_body TEXT,                            -- truncated to the configured cap
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id);
