"""Real traffic through a running stack, and what its API says about it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}


async def send(stack: Any, n: int = 1, *, domain: str = "team-a.example", model: str = "claude-sonnet-4-5",
               status: int | None = None, key: str = "sk-ant-tui-test-a",
               extra: dict[str, str] | None = None) -> None:
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "Host": domain, **(extra or {})}
    if status is not None:
        headers["x-mock-status"] = str(status)
    async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=30) as c:
        await asyncio.gather(*(c.post("/v1/messages", json={**BODY, "model": model}, headers=headers)
                               for _ in range(n)))


async def api_get(stack: Any, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=stack.dashboard_url, headers={"X-Dashboard-Key": stack.key},
                                 timeout=10) as c:
        r = await c.get(path, params=params)
        r.raise_for_status()
        return r.json()


async def wait_total(stack: Any, n: int, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = await api_get(stack, "/api/stats", since="1h", **params)
        if stats["totalRequests"] >= n or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.05)


def claude_code(session: str, agent: str | None = None, parent: str | None = None, **tags: str) -> dict[str, str]:
    """The headers Claude Code 2.1.197 sends (tests/fixtures/claude_code/), plus ``x-nexus-tag-*`` tags."""
    h = {"x-claude-code-session-id": session, "user-agent": "claude-cli/2.1.197 (external, sdk-cli)",
         "x-app": "cli"}
    if agent:
        h["x-claude-code-agent-id"] = agent
    if parent:
        h["x-claude-code-parent-agent-id"] = parent
    h.update({f"x-nexus-tag-{k}": v for k, v in tags.items()})
    return h
