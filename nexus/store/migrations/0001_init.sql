-- 0001: the request log, partitioned by day from the start, its bodies, and per-minute rollups.
--
-- Column names follow the Monitoring Guide so that its SQL runs unchanged:
-- created_at, response_time_ms, status_code, error_type, domain, model, input_tokens, output_tokens.

CREATE TABLE api_requests (
    id                          uuid        NOT NULL,
    created_at                  timestamptz NOT NULL,
    request_id                  text,
    domain                      text        NOT NULL DEFAULT '',
    account_id                  text,
    method                      text        NOT NULL,
    path                        text        NOT NULL,
    model                       text,
    stream                      boolean     NOT NULL DEFAULT false,
    status_code                 integer     NOT NULL,
    error_type                  text,
    error_message               text,
    input_tokens                bigint      NOT NULL DEFAULT 0,
    output_tokens               bigint      NOT NULL DEFAULT 0,
    cache_creation_input_tokens bigint      NOT NULL DEFAULT 0,
    cache_creation_5m_tokens    bigint      NOT NULL DEFAULT 0,
    cache_creation_1h_tokens    bigint      NOT NULL DEFAULT 0,
    cache_read_input_tokens     bigint      NOT NULL DEFAULT 0,
    counted_tokens              bigint,
    total_tokens                bigint GENERATED ALWAYS AS
        (input_tokens + output_tokens + cache_creation_input_tokens + cache_read_input_tokens) STORED,
    response_time_ms            double precision NOT NULL DEFAULT 0,
    ttft_ms                     double precision,
    cost_usd                    numeric(18, 10),
    request_type                text        NOT NULL DEFAULT 'messages',
    instance_id                 text,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

-- Rows whose day has no partition yet land here instead of failing; the writer creates
-- partitions ahead of time so this stays empty in practice.
CREATE TABLE api_requests_default PARTITION OF api_requests DEFAULT;

CREATE INDEX api_requests_created_at_idx ON api_requests (created_at DESC);
CREATE INDEX api_requests_domain_created_idx ON api_requests (domain, created_at DESC);
CREATE INDEX api_requests_account_created_idx ON api_requests (account_id, created_at DESC);
CREATE INDEX api_requests_errors_idx ON api_requests (created_at DESC) WHERE status_code >= 400;

-- Headers and bodies, kept per STORE_BODIES, secrets already redacted. Partitioned the same
-- way so that pruning a day drops both.
CREATE TABLE api_request_bodies (
    request_uuid      uuid        NOT NULL,
    created_at        timestamptz NOT NULL,
    request_headers   jsonb,
    response_headers  jsonb,
    request_body      text,
    response_body     text,
    PRIMARY KEY (request_uuid, created_at)
) PARTITION BY RANGE (created_at);

CREATE TABLE api_request_bodies_default PARTITION OF api_request_bodies DEFAULT;

-- Per-minute rollups maintained by the writer in the same statement as the insert (so a
-- replayed record is never counted twice). Charts and window queries read these.
-- latency_hist counts response times per bucket of nexus.latency_buckets (ms upper bounds).
CREATE TABLE api_requests_minute (
    bucket                      timestamptz NOT NULL,
    domain                      text        NOT NULL,
    account_id                  text        NOT NULL,
    model                       text        NOT NULL,
    requests                    bigint      NOT NULL DEFAULT 0,
    errors                      bigint      NOT NULL DEFAULT 0,
    input_tokens                bigint      NOT NULL DEFAULT 0,
    output_tokens               bigint      NOT NULL DEFAULT 0,
    cache_creation_input_tokens bigint      NOT NULL DEFAULT 0,
    cache_read_input_tokens     bigint      NOT NULL DEFAULT 0,
    cost_usd                    numeric(18, 10) NOT NULL DEFAULT 0,
    unpriced_requests           bigint      NOT NULL DEFAULT 0,
    latency_sum_ms              double precision NOT NULL DEFAULT 0,
    latency_hist                bigint[]    NOT NULL,
    PRIMARY KEY (bucket, domain, account_id, model)
);

CREATE INDEX api_requests_minute_account_idx ON api_requests_minute (account_id, bucket);

-- Element-wise sum of two equal-length arrays, for merging latency histograms.
CREATE FUNCTION nexus_array_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN a IS NULL THEN b
        WHEN b IS NULL THEN a
        ELSE ARRAY(SELECT coalesce(x, 0) + coalesce(y, 0) FROM unnest(a, b) AS t(x, y))
    END
$$;

CREATE AGGREGATE nexus_hist_sum(bigint[]) (
    SFUNC = nexus_array_add,
    STYPE = bigint[]
);

-- Small key/value store shared by every instance on this database (e.g. the dashboard key).
CREATE TABLE nexus_meta (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
