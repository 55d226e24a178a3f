"""What the mock answers with: filler text of a given length, and tool calls matching a tool's schema.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from aiohttp import web

_WORDS = (
    "the proxy records every request and the monitor shows latency tokens and cost as they happen "
    "streaming responses arrive event by event so the first token reaches the client early while "
    "usage is reported in message start and the final message delta carries cumulative counts"
).split()


@functools.lru_cache(maxsize=2048)
def text_for(output_tokens: int) -> str:
    """Roughly one word per output token (capped, so huge steered counts stay cheap)."""
    n = max(1, min(output_tokens, 2000))
    words = [_WORDS[i % len(_WORDS)] for i in range(n)]
    return " ".join(words).capitalize() + "."


def split_text(text: str, parts: int) -> list[str]:
    """Cut ``text`` into exactly ``parts`` pieces (fewer only if it is shorter than that).

    Whole words go together when there are enough of them, so deltas look like token runs;
    otherwise (tool JSON) the cut is by characters.
    """
    parts = max(1, min(parts, len(text)))
    words = text.split(" ")
    if len(words) >= parts:
        bounds = [round(k * len(words) / parts) for k in range(parts + 1)]
        chunks = [" ".join(words[bounds[k] : bounds[k + 1]]) for k in range(parts)]
        return [c if k == 0 else " " + c for k, c in enumerate(chunks)]
    bounds = [round(k * len(text) / parts) for k in range(parts + 1)]
    return [text[bounds[k] : bounds[k + 1]] for k in range(parts)]


_REMINDER = re.compile(r"<system-reminder>.*?(</system-reminder>|$)", re.DOTALL)


def _ask_pattern(name: str) -> re.Pattern[str]:
    # "use the Bash tool", "call get_weather", "run Bash", "invoke the Agent tool"
    return re.compile(r"\b(?:use|call|run|invoke)\s+(?:the\s+)?" + re.escape(name) + r"(?![\w-])", re.IGNORECASE)


def _last_turn(messages: Any) -> Any:
    """The last user or assistant message: Claude Code 2.1 ends ``messages`` with a ``system`` one
    (the agent types it offers), which is context, not the conversation's turn."""
    if not isinstance(messages, list):
        return None
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") in ("user", "assistant"):
            return m
    return None


def _prompt_text(message: Any) -> str | None:
    """The user's own words in the last message; ``None`` when it answers a tool (a ``tool_result``).

    ``<system-reminder>`` blocks are the client's, not the user's: Claude Code puts tool lists and
    context there, and a mock that read them as a request would call tools forever.
    """
    if not isinstance(message, dict) or message.get("role") != "user":
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return _REMINDER.sub(" ", content)
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            return None
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(_REMINDER.sub(" ", block["text"]))
    return " ".join(texts)


def pick_tool(payload: dict[str, Any], request: web.Request) -> dict[str, Any] | None:
    """Which tool the "model" calls, if any — by default none: plain text and ``end_turn``.

    Deterministic stand-in for the model's choice, safe to point an agent (Claude Code) at: a
    tool is used only when ``tool_choice`` forces one (``any`` / ``tool``), when
    ``x-mock-tool-use: 1`` asks for it, or when the user's last message explicitly asks for a
    tool by name ("use the get_weather tool", "call get_weather"). Never with
    ``tool_choice: none``, never in answer to a ``tool_result`` (unless forced), and text inside
    ``<system-reminder>`` blocks does not count.
    """
    tools = payload.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    # Server tools (web_search_*, web_fetch_*) run on the API's side: the model never "calls" them
    # as a client tool_use block; their use shows in usage.server_tool_use (mock/billing.py).
    named = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)
             and not str(t.get("type", "")).startswith(("web_search", "web_fetch"))]
    if not named:
        return None
    choice = payload.get("tool_choice")
    ctype = choice.get("type") if isinstance(choice, dict) else None
    if ctype == "none":
        return None
    if ctype == "tool":
        for t in named:
            if t["name"] == choice.get("name"):  # type: ignore[union-attr]
                return t
        return named[0]
    if ctype == "any" or request.headers.get("x-mock-tool-use") == "1":
        return named[0]
    text = _prompt_text(_last_turn(payload.get("messages")))
    if not text:
        return None
    for t in named:
        if _ask_pattern(t["name"]).search(text):
            return t
    return None


def _example_value(schema: Any, name: str) -> Any:
    if not isinstance(schema, dict):
        return "example"
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "string":
        return {"location": "San Francisco, CA", "city": "Paris", "path": "src/main.py"}.get(name, f"example {name}")
    if kind == "integer":
        return 42
    if kind == "number":
        return 3.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_example_value(schema.get("items"), name)]
    if kind == "object":
        return tool_input(schema)
    return "example"


def tool_input(schema: Any) -> dict[str, Any]:
    """An input object that satisfies the tool's schema (its required properties, or all)."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties") or {}
    if not isinstance(props, dict):
        return {}
    names = schema.get("required") or list(props)
    return {n: _example_value(props.get(n), n) for n in names if isinstance(n, str)}
