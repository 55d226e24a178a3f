-- 0004: every billing dimension Anthropic reports, and the cost breakdown by dimension.
--
-- api_requests gets what `usage` says beyond tokens (service tier, fast mode, US-only inference,
-- server-side web searches and fetches, thinking tokens), which price layer priced the row, and
-- the web-search part of its cost. api_requests_minute gets the counters that /api/costs and
-- /api/stats break cost down by. Every new column is nullable or has a constant default, so
-- PostgreSQL adds it without rewriting existing rows; old rows read as "not reported".
ALTER TABLE api_requests
    ADD COLUMN service_tier        text,
    ADD COLUMN speed               text,
    ADD COLUMN inference_geo       text,
    ADD COLUMN web_search_requests bigint NOT NULL DEFAULT 0,
    ADD COLUMN web_fetch_requests  bigint NOT NULL DEFAULT 0,
    ADD COLUMN thinking_tokens     bigint NOT NULL DEFAULT 0,
    ADD COLUMN price_source        text,
    ADD COLUMN web_search_cost_usd numeric(18, 10);

ALTER TABLE api_requests_minute
    ADD COLUMN fast_requests       bigint NOT NULL DEFAULT 0,
    ADD COLUMN fast_cost_usd       numeric(18, 10) NOT NULL DEFAULT 0,
    ADD COLUMN geo_us_requests     bigint NOT NULL DEFAULT 0,
    ADD COLUMN geo_us_cost_usd     numeric(18, 10) NOT NULL DEFAULT 0,
    ADD COLUMN web_search_requests bigint NOT NULL DEFAULT 0,
    ADD COLUMN web_search_cost_usd numeric(18, 10) NOT NULL DEFAULT 0,
    ADD COLUMN web_fetch_requests  bigint NOT NULL DEFAULT 0,
    ADD COLUMN thinking_tokens     bigint NOT NULL DEFAULT 0,
    ADD COLUMN unpriced_tokens     bigint NOT NULL DEFAULT 0;
