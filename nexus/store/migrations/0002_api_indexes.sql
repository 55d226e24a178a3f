-- 0002: indexes for the dashboard API's reads of raw rows.
--
-- The API counts a request as an error when status_code >= 400 OR it carries an error_type (an
-- `error` event inside a 200 stream). 0001's partial index covers only status_code >= 400, which
-- the planner cannot use for that condition, so /api/errors and /api/requests?status=error would
-- walk every row of the range. Errors are a few percent of the traffic: this index is small and
-- costs the write path little.
CREATE INDEX api_requests_any_error_idx ON api_requests (created_at DESC)
    WHERE status_code >= 400 OR error_type IS NOT NULL;

-- /api/requests?model=… and ?status=<code> have no index on the raw table; the API first asks the
-- rollups in which minutes matching rows can be (none at all for an unknown model). This index
-- makes that question cheap. The rollup table gets a few rows per batch, so the write cost is small.
CREATE INDEX api_requests_minute_model_idx ON api_requests_minute (model, bucket);
