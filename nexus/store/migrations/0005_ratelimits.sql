-- 0005: Anthropic's rate-limit headers per account (docs/limits.md).
--
-- ratelimit_latest: what the latest answer for each account said (upserted; a row only moves
-- forward in time, so instances writing out of order never put an older answer back).
-- ratelimit_samples: utilization history per account and window, at most one row a minute (the
-- minute's latest answer) — the charts and the burn/exhaustion maths read it.
-- ratelimit_answers: every answer's utilization per window, keyed by the request's uuid
-- (api_requests.id), for per-session quota shares. Both history tables are pruned with
-- RETENTION_DAYS like api_requests.
CREATE TABLE ratelimit_latest (
    account_id   text        PRIMARY KEY,
    kind         text,
    observed_at  timestamptz NOT NULL,
    request_uuid uuid,
    request_id   text,
    status_code  integer,
    snapshot     jsonb       NOT NULL,
    headers      jsonb       NOT NULL,
    instance_id  text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ratelimit_samples (
    account_id   text             NOT NULL,
    window_name  text             NOT NULL,
    bucket       timestamptz      NOT NULL,
    observed_at  timestamptz      NOT NULL,
    utilization  double precision,
    resets_at    timestamptz,
    status       text,
    request_uuid uuid,
    PRIMARY KEY (account_id, window_name, bucket)
);

CREATE TABLE ratelimit_answers (
    request_uuid uuid        PRIMARY KEY,
    observed_at  timestamptz NOT NULL,
    account_id   text        NOT NULL,
    request_id   text,
    status       text,
    utilization  jsonb       NOT NULL
);

CREATE INDEX ratelimit_answers_account_idx ON ratelimit_answers (account_id, observed_at);
