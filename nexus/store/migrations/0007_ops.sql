-- 0007 (operations): the clock-skew heartbeat and an index for nexus report.
-- Watching the watcher: every instance's clock against the database server's (the clock_skew rule).
-- seen_at is the database's own time, so an instance whose clock is wrong cannot look alive or dead
-- by it; offset_s is the instance's clock minus the server's, measured around one round trip.
CREATE TABLE alert_instance_clocks (
    instance_id text PRIMARY KEY,
    offset_s    double precision NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- nexus report: error types per period by an index-only scan (a bitmap scan of the 3 % error rows
-- visits nearly every heap page: seconds on 10 M rows). Partial, so it stays small.
CREATE INDEX api_requests_error_types_idx ON api_requests (created_at, status_code, error_type)
    WHERE status_code >= 400 OR error_type IS NOT NULL;
