-- panelflow initial schema: accounts and their money, keys, catalog, orders, refills, outbox.
-- Money is NUMERIC everywhere; the invariants live here, not only in the code.

CREATE TABLE accounts (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    balance       NUMERIC(20, 5) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    currency      TEXT NOT NULL DEFAULT 'USD',
    tier          TEXT NOT NULL DEFAULT 'standard',
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    low_balance_threshold NUMERIC(20, 5),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            BIGSERIAL PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES accounts (id),
    key_hash      BYTEA NOT NULL UNIQUE,           -- sha256 of the key; the key itself is never stored
    prefix        TEXT NOT NULL UNIQUE,            -- first characters, to recognise a key in lists
    scopes        TEXT[] NOT NULL,
    allow_ips     CIDR[],                          -- NULL: any address
    rate_limit_per_min INTEGER,                    -- NULL: the configured default
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id);

CREATE TABLE providers (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    url           TEXT NOT NULL,
    api_key       TEXT NOT NULL,                   -- the upstream's key: we must send it, so it is kept
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE services (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    type          TEXT NOT NULL,
    category      TEXT NOT NULL DEFAULT '',
    rate          NUMERIC(20, 5) NOT NULL CHECK (rate >= 0),       -- sell rate per 1000 (flat for packages)
    cost_rate     NUMERIC(20, 5) NOT NULL DEFAULT 0 CHECK (cost_rate >= 0),
    min_quantity  INTEGER NOT NULL DEFAULT 1 CHECK (min_quantity >= 0),
    max_quantity  INTEGER NOT NULL DEFAULT 1 CHECK (max_quantity >= min_quantity),
    refill        BOOLEAN NOT NULL DEFAULT FALSE,
    cancel        BOOLEAN NOT NULL DEFAULT FALSE,
    dripfeed      BOOLEAN NOT NULL DEFAULT FALSE,
    provider_id   BIGINT REFERENCES providers (id),
    provider_service_id TEXT,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (provider_id, provider_service_id)
);

-- status holds the internal state; the API maps it onto the contract's strings.
--   pending -> submitting -> in_progress / processing -> completed | partial | canceled
--   submitting -> unknown (outcome of the upstream call unknown: parked for an operator)
CREATE TABLE orders (
    id                BIGSERIAL PRIMARY KEY,
    account_id        BIGINT NOT NULL REFERENCES accounts (id),
    request_id        TEXT NOT NULL,
    params_hash       BYTEA NOT NULL,
    service_id        BIGINT NOT NULL REFERENCES services (id),
    type              TEXT NOT NULL,
    link              TEXT,
    quantity          INTEGER NOT NULL,            -- charged quantity (quantity x runs, lines, ...)
    params            JSONB NOT NULL,              -- the type's own parameters, normalised
    rate              NUMERIC(20, 5) NOT NULL,     -- the price when placed; catalog changes never touch it
    charge            NUMERIC(20, 5) NOT NULL CHECK (charge >= 0),
    refunded          NUMERIC(20, 5) NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= charge),
    currency          TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending',
    start_count       BIGINT,
    remains           BIGINT,
    provider_id       BIGINT REFERENCES providers (id),
    provider_order_id TEXT,
    cancel_requested_at TIMESTAMPTZ,
    submit_attempts   INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TIMESTAMPTZ,                 -- submission retry (pending) or status poll (in flight)
    last_error        TEXT,
    correlation_id    TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (account_id, request_id)
);
CREATE INDEX orders_account_idx ON orders (account_id, id);
CREATE INDEX orders_due_idx ON orders (next_attempt_at)
    WHERE status IN ('pending', 'in_progress', 'processing');
CREATE INDEX orders_parked_idx ON orders (id) WHERE status = 'unknown';

CREATE TABLE refills (
    id                 BIGSERIAL PRIMARY KEY,
    order_id           BIGINT NOT NULL REFERENCES orders (id),
    account_id         BIGINT NOT NULL REFERENCES accounts (id),
    status             TEXT NOT NULL DEFAULT 'pending',
    provider_refill_id TEXT,
    next_attempt_at    TIMESTAMPTZ,
    last_error         TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refills_order_idx ON refills (order_id);
CREATE INDEX refills_account_idx ON refills (account_id, id);

-- Append-only: every change of a balance is one row here, so sum(amount) per account == balance.
CREATE TABLE ledger (
    id          BIGSERIAL PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    kind        TEXT NOT NULL CHECK (kind IN ('topup', 'adjustment', 'reserve', 'capture', 'refund')),
    amount      NUMERIC(20, 5) NOT NULL,
    order_id    BIGINT REFERENCES orders (id),
    memo        TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ledger_account_idx ON ledger (account_id);
-- One reservation, one capture and one refund per order at most: refunds are exactly-once by schema.
CREATE UNIQUE INDEX ledger_order_kind_once ON ledger (order_id, kind)
    WHERE kind IN ('reserve', 'capture', 'refund');

CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only';
END $$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();

-- Transactional outbox: written in the same transaction as the state change, published by the relay.
CREATE TABLE outbox (
    id              UUID PRIMARY KEY,
    event_type      TEXT NOT NULL,                 -- also the routing key
    payload         JSONB NOT NULL,
    correlation_id  TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    published_at    TIMESTAMPTZ,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
);
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('panelflow_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Consumer-side dedupe where state alone cannot tell a redelivery apart.
CREATE TABLE processed_events (
    consumer    TEXT NOT NULL,
    event_id    UUID NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
