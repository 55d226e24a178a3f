-- Watching the watcher: every instance's clock against the database server's (the clock_skew rule).
-- seen_at is the database's own time, so an instance whose clock is wrong cannot look alive or dead
-- by it; offset_s is the instance's clock minus the server's, measured around one round trip.
CREATE TABLE alert_instance_clocks (
    instance_id text PRIMARY KEY,
    offset_s    double precision NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
