"""Replays of a recorded Claude Code 2.1.197 run (tests/fixtures/claude_code/): attribution and the mock's answers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from nexus.core.sessions import attribute
from nexus.sim.mock.content import pick_tool

FIXTURE = Path(__file__).parent.parent / "fixtures" / "claude_code" / "agent_run_2.1.197.json"
RUN = orjson.loads(FIXTURE.read_bytes())["requests"]


@pytest.mark.parametrize("req", RUN, ids=lambda r: r["headers"].get("x-claude-code-agent-id") or "main")
def test_recorded_requests_attribute_as_recorded(req: dict[str, Any]) -> None:
    headers = CIMultiDict(req["headers"])
    headers["x-nexus-tag-project"] = "apollo"  # ANTHROPIC_CUSTOM_HEADERS, stripped before the capture
    a = attribute(headers, req["body"]["metadata"]["user_id"])
    rec = req["recorded"]
    assert (a.session_id, a.agent_id, a.parent_agent_id, a.client, a.tags) == (
        rec["sessionId"], rec["agentId"], rec["parentAgentId"], rec["client"], rec["tags"])
    # the body's metadata names the same session as the header
    assert orjson.loads(req["body"]["metadata"]["user_id"])["session_id"] == req["headers"]["x-claude-code-session-id"]


def test_one_session_main_thread_and_one_sub_agent() -> None:
    assert len({r["recorded"]["sessionId"] for r in RUN}) == 1
    assert [r["recorded"]["agentId"] is not None for r in RUN] == [False, True, False]


@pytest.mark.parametrize("req", RUN, ids=lambda r: r["headers"].get("x-claude-code-agent-id") or "main")
def test_mock_answers_each_recorded_request_as_it_did(req: dict[str, Any]) -> None:
    """Asked for the Agent tool: one tool call; the sub-agent and the tool_result turn: plain text."""
    tool = pick_tool(req["body"], SimpleNamespace(headers={}))
    assert ("tool_use" if tool is not None else "end_turn") == req["mock_stop_reason"]
    if tool is not None:
        assert tool["name"] == "Agent"
