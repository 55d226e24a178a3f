-- 0006: sessions, agents and tags — who sent each exchange, and a read model of sessions.
--
-- api_requests gets the session (Claude Code's x-claude-code-session-id, or the one inside
-- metadata.user_id), the agent ids of sub-agent requests, the client (User-Agent product token
-- plus x-app) and the tags (x-nexus-tag-* headers and TAG_HEADERS) as a jsonb object, GIN-indexed
-- so that `tags @> '{"project":"apollo"}'` filters use the index. The raw metadata.user_id is never
-- stored (it holds a device id).
--
-- api_sessions, api_session_agents and api_session_tags are rolled up by the writer in the same
-- transaction as the insert (nexus/store/write.py), like api_requests_minute, so listing sessions
-- never scans raw rows. agent_id '' is the session's main thread.
ALTER TABLE api_requests
    ADD COLUMN session_id      text,
    ADD COLUMN agent_id        text,
    ADD COLUMN parent_agent_id text,
    ADD COLUMN client          text,
    ADD COLUMN tags            jsonb;

CREATE INDEX api_requests_session_created_idx ON api_requests (session_id, created_at DESC)
    WHERE session_id IS NOT NULL;
CREATE INDEX api_requests_tags_idx ON api_requests USING gin (tags jsonb_path_ops);

CREATE TABLE api_sessions (
    session_id                  text        PRIMARY KEY,
    account_id                  text,
    client                      text,
    first_seen                  timestamptz NOT NULL,
    last_seen                   timestamptz NOT NULL,
    requests                    bigint      NOT NULL DEFAULT 0,
    errors                      bigint      NOT NULL DEFAULT 0,
    input_tokens                bigint      NOT NULL DEFAULT 0,
    output_tokens               bigint      NOT NULL DEFAULT 0,
    cache_creation_input_tokens bigint      NOT NULL DEFAULT 0,
    cache_read_input_tokens     bigint      NOT NULL DEFAULT 0,
    cost_usd                    numeric(18, 10) NOT NULL DEFAULT 0,
    unpriced_requests           bigint      NOT NULL DEFAULT 0,
    models                      text[]      NOT NULL DEFAULT '{}'
);

CREATE INDEX api_sessions_last_seen_idx ON api_sessions (last_seen DESC, session_id DESC);
CREATE INDEX api_sessions_account_idx ON api_sessions (account_id, last_seen DESC);

CREATE TABLE api_session_agents (
    session_id                  text        NOT NULL REFERENCES api_sessions ON DELETE CASCADE,
    agent_id                    text        NOT NULL,
    parent_agent_id             text,
    first_seen                  timestamptz NOT NULL,
    last_seen                   timestamptz NOT NULL,
    requests                    bigint      NOT NULL DEFAULT 0,
    errors                      bigint      NOT NULL DEFAULT 0,
    input_tokens                bigint      NOT NULL DEFAULT 0,
    output_tokens               bigint      NOT NULL DEFAULT 0,
    cache_creation_input_tokens bigint      NOT NULL DEFAULT 0,
    cache_read_input_tokens     bigint      NOT NULL DEFAULT 0,
    cost_usd                    numeric(18, 10) NOT NULL DEFAULT 0,
    models                      text[]      NOT NULL DEFAULT '{}',
    PRIMARY KEY (session_id, agent_id)
);

CREATE TABLE api_session_tags (
    session_id text   NOT NULL REFERENCES api_sessions ON DELETE CASCADE,
    name       text   NOT NULL,
    value      text   NOT NULL,
    requests   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, name, value)
);

CREATE INDEX api_session_tags_lookup_idx ON api_session_tags (name, value);

-- The union of two model lists, sorted, at most 20 (a session switching models all day stays small).
CREATE FUNCTION nexus_models_union(a text[], b text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(m ORDER BY m), '{}') FROM (
        SELECT DISTINCT m FROM unnest(coalesce(a, '{}') || coalesce(b, '{}')) AS t(m) ORDER BY m LIMIT 20
    ) AS u
$$;
