-- 0003: stored alerts, the evaluator's pending state, and per-instance pool usage.
--
-- At most one *firing* row per (rule, key): the partial unique index makes a second instance's
-- attempt to fire the same alert a no-op, on top of the advisory lock the evaluator takes.

CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    rule             text        NOT NULL,
    key              text        NOT NULL,
    title            text        NOT NULL,
    severity         text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    summary          text        NOT NULL,
    value            double precision,
    threshold        double precision,
    labels           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    started_at       timestamptz NOT NULL,
    resolved_at      timestamptz,
    last_notified_at timestamptz,
    notify_count     integer     NOT NULL DEFAULT 1,
    instance_id      text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX alerts_one_firing_idx ON alerts (rule, key) WHERE status = 'firing';
CREATE INDEX alerts_started_idx ON alerts (started_at DESC);

-- Conditions that hold but have not held long enough to fire yet. Kept in the database so
-- whichever instance evaluates next continues the count instead of starting over.
CREATE TABLE alert_pending (
    rule          text        NOT NULL,
    key           text        NOT NULL,
    pending_since timestamptz NOT NULL,
    PRIMARY KEY (rule, key)
);

-- Each proxy instance reports its own connection-pool usage here; the evaluating instance reads
-- every live row, so the pool rule covers all instances, not only the one holding the lock.
CREATE TABLE alert_instance_pools (
    instance_id text        PRIMARY KEY,
    in_use      integer     NOT NULL,
    max_size    integer     NOT NULL,
    reported_at timestamptz NOT NULL
);

-- When the evaluation last ran (any instance), so N instances do not all evaluate every tick.
CREATE TABLE alert_evaluations (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    last_run_at timestamptz NOT NULL,
    instance_id text
);
