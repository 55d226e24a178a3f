"""What the demo traffic says: tasks, repository filler, tools, betas, and which models take which billing parameters."""

from __future__ import annotations

import random
from typing import Any

_TASKS = (
    "Refactor the retry loop in client.py so that backoff is capped and jittered.",
    "Why does this test fail only on CI? The traceback is below.",
    "Write a SQL query for the p95 latency per hour over the last day.",
    "Summarise the diff and suggest a commit message.",
    "Explain what this regular expression matches and give three counterexamples.",
    "Add type hints to the module and fix whatever mypy reports.",
    "Draft release notes for version 2.3 from these merged pull requests.",
    "Find the memory leak: RSS grows by 40 MB an hour under steady load.",
    "Convert this bash script to Python, keeping the exit codes.",
    "Review this migration for locking problems on a 200 GB table.",
)
_FILLER = ("def handler(request):\n    body = await request.get_json()\n    return jsonify(process(body))\n"
           "# context line from the repository, included so the prompt has a realistic size\n")

_TOOLS = [
    {"name": "read_file", "description": "Read a file from the workspace",
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
    {"name": "run_tests", "description": "Run the test suite, optionally filtered",
     "input_schema": {"type": "object", "properties": {"filter": {"type": "string"},
                                                       "verbose": {"type": "boolean"}}, "required": ["filter"]}},
]

_BETAS = ("prompt-caching-2024-07-31", "interleaved-thinking-2025-05-14", "context-1m-2025-08-07",
          "fine-grained-tool-streaming-2025-05-14")


# Which models take which billing parameters (as the real API: others answer 400).
_FAST_MODELS = frozenset({"claude-opus-5-5"})
_GEO_MODELS = frozenset({"claude-sonnet-5-5", "claude-opus-5-5", "claude-opus-4-6", "claude-fable-5-1"})
_WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
_WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 3}



def add_billing(rng: random.Random, body: dict[str, Any], model: str, us_team: bool) -> dict[str, bool]:
    """Fast mode, US-only inference, web search/fetch and thinking for one message request (in ``body``)."""
    dims = {"fast": model in _FAST_MODELS and rng.random() < 0.3,
            "us_only": model in _GEO_MODELS and (us_team or rng.random() < 0.08),
            "web_search": rng.random() < 0.1, "web_fetch": rng.random() < 0.05,
            "thinking": rng.random() < 0.2}
    if dims["fast"]:
        body["speed"] = "fast"
    if dims["us_only"]:
        body["inference_geo"] = "us"
    server_tools = [t for t, on in ((_WEB_SEARCH, dims["web_search"]), (_WEB_FETCH, dims["web_fetch"])) if on]
    if server_tools:
        body["tools"] = [*body.get("tools", []), *server_tools]
    return dims
