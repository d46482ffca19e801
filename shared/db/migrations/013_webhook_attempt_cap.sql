-- A cap on the attempts of a delivery (webhook_max_attempts), whatever happens to them: a delivery whose result
-- is never recorded (a dispatcher dying mid-attempt, again and again) would otherwise be leased again every
-- lease period, outside the retry schedule and the auto-disable. The claim counts the attempts of the current
-- run (since the delivery was queued or replayed; `attempts` keeps counting every attempt ever made) and hands
-- the count to the dispatcher, which fails a delivery over the cap instead of sending it.
ALTER TABLE webhook_deliveries ADD COLUMN run_attempts INTEGER NOT NULL DEFAULT 0;

-- webhook_claim of migration 008, also counting and returning run_attempts (a new result column: drop, create).
DROP FUNCTION webhook_claim(integer, integer, double precision, integer, double precision, uuid);
CREATE FUNCTION webhook_claim(
    p_limit integer,          -- deliveries at most, all endpoints together
    p_concurrency integer,    -- per endpoint, in flight across every dispatcher
    p_rate double precision,  -- per endpoint, requests per second; 0: no limit
    p_burst integer,          -- GCRA burst of the rate limit
    p_lease_s double precision,
    p_token uuid
)
RETURNS TABLE (
    delivery_id bigint, endpoint_id bigint, event_id uuid, event_type text, data jsonb, event_time timestamptz,
    attempt integer, step integer, url text, secret_enc text, old_secret_enc text, correlation_id text,
    run_attempt integer
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
    v_tats timestamptz[];
    v_at timestamptz;
BEGIN
    -- Endpoints with due deliveries, earliest due first. The endpoints holding pending deliveries are found
    -- with a skip scan of the (endpoint_id, next_attempt_at) index: the cost follows the number of such
    -- endpoints, not the length of the backlog.
    WITH RECURSIVE holders AS (
        (SELECT d.endpoint_id FROM webhook_deliveries d WHERE d.status = 'pending' ORDER BY d.endpoint_id LIMIT 1)
        UNION ALL
        SELECT (SELECT d.endpoint_id FROM webhook_deliveries d
                WHERE d.status = 'pending' AND d.endpoint_id > h.endpoint_id ORDER BY d.endpoint_id LIMIT 1)
        FROM holders h WHERE h.endpoint_id IS NOT NULL
    ), due AS (
        SELECT h.endpoint_id, first.due FROM holders h
        CROSS JOIN LATERAL (
            SELECT d.next_attempt_at AS due FROM webhook_deliveries d
            WHERE d.endpoint_id = h.endpoint_id AND d.status = 'pending' AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at LIMIT 1
        ) first
        WHERE h.endpoint_id IS NOT NULL
    )
    SELECT coalesce(array_agg(l.id ORDER BY l.due, l.id), '{}'), array_agg(l.rate_tat ORDER BY l.due, l.id)
    INTO v_ids, v_tats
    FROM (
        SELECT e.id, e.rate_tat, due.due FROM webhook_endpoints e JOIN due ON due.endpoint_id = e.id
        WHERE e.enabled
        ORDER BY due.due, e.id
        LIMIT p_limit
        FOR NO KEY UPDATE OF e SKIP LOCKED
    ) l;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    v_at := clock_timestamp();

    RETURN QUERY
    WITH locked AS (
        SELECT l.id, l.tat, l.ord FROM unnest(v_ids, v_tats) WITH ORDINALITY AS l (id, tat, ord)
    ), busy AS (
        SELECT d.endpoint_id, count(*) AS n FROM webhook_deliveries d
        WHERE d.endpoint_id = ANY (v_ids) AND d.status = 'pending' AND d.lease_token IS NOT NULL
          AND d.next_attempt_at > now()
        GROUP BY d.endpoint_id
    ), quota AS (
        -- GCRA: what the rate allows now from max(tat, now), within what the concurrency leaves free.
        SELECT l.id, l.ord, greatest(l.tat, v_at) AS base,
               greatest(0, least(
                   p_concurrency - coalesce(b.n, 0),
                   CASE WHEN p_rate > 0
                        THEN floor(extract(epoch FROM v_at - greatest(l.tat, v_at)) * p_rate + p_burst + 1e-9)::bigint
                        ELSE p_limit END
               )) AS n
        FROM locked l LEFT JOIN busy b ON b.endpoint_id = l.id
    ), budget AS (
        -- Earliest due first, until the claim's limit is spent.
        SELECT q.id, q.base, least(q.n, greatest(0, p_limit - (sum(q.n) OVER (ORDER BY q.ord) - q.n))) AS n
        FROM quota q
    ), picked AS MATERIALIZED (
        -- In the index's order (ties among the deliveries of one due time in any order): no sort of the backlog.
        SELECT c.id FROM budget b
        CROSS JOIN LATERAL (
            SELECT x.id FROM webhook_deliveries x
            WHERE x.endpoint_id = b.id AND x.status = 'pending' AND x.next_attempt_at <= now()
            ORDER BY x.next_attempt_at
            LIMIT b.n
        ) c
        WHERE b.n > 0
    ), leased AS (
        -- By primary key whatever the statistics say (a fresh table's may claim it holds a few dozen rows).
        UPDATE webhook_deliveries d
        SET lease_token = p_token, next_attempt_at = now() + make_interval(secs => p_lease_s),
            attempts = d.attempts + 1, run_attempts = d.run_attempts + 1, updated_at = now()
        WHERE d.id = ANY (ARRAY(SELECT picked.id FROM picked)) AND d.status = 'pending' AND d.next_attempt_at <= now()
        RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, d.step, d.run_attempts
    ), tat AS (
        UPDATE webhook_endpoints e SET rate_tat = b.base + make_interval(secs => c.n / p_rate)
        FROM budget b JOIN (SELECT x.endpoint_id, count(*) AS n FROM leased x GROUP BY x.endpoint_id) c
             ON c.endpoint_id = b.id
        WHERE p_rate > 0 AND e.id = b.id
    )
    SELECT l.id, l.endpoint_id, l.event_id, ev.type, ev.data, ev.created_at, l.attempts, l.step, e.url,
           e.secret_enc, CASE WHEN e.old_secret_expires_at > now() THEN e.old_secret_enc END, ev.correlation_id,
           l.run_attempts
    FROM leased l
    JOIN webhook_events ev ON ev.id = l.event_id
    JOIN webhook_endpoints e ON e.id = l.endpoint_id;
END
$$;
