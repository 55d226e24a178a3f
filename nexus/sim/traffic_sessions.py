"""Claude Code sessions for the demo traffic: who is in which session, its sub-agents and tags.

Every person but the CI bot works in a session of a few dozen requests; a burst is a session's
sub-agents at work (two levels deep); sessions carry project (and sometimes ticket) tags. The
research account runs an older Claude Code that names the session only in ``metadata.user_id``
(JSON-encoded), bob an even older one (the legacy string) — the three formats the proxy reads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson

# Projects per domain: what teams put in x-nexus-tag-project.
_PROJECTS: dict[str, tuple[str, ...]] = {
    "team-alpha.example.com": ("apollo", "zeus"),
    "team-beta.example.com": ("hermes",),
    "research.example.org": ("atlas",),
}
CLAUDE_CODE_UA = "claude-cli/2.1.197 (external, sdk-cli)"


@dataclass
class _Session:
    """One Claude Code session of one person: its id, how long it still runs, its agents and tags."""

    id: str
    left: int
    tags: dict[str, str]
    agents: list[tuple[str, str | None]] = field(default_factory=list)  # (agent id, parent agent id)


class SessionPlanner:
    """Seeded choices (the generator's ``rng``), so a seed fixes the sessions too."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sessions: dict[str, _Session] = {}
        self.started = 0

    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def _session_for(self, name: str, domain: str) -> _Session:
        cur = self.sessions.get(name)
        if cur is None or cur.left <= 0:
            rng = self.rng
            tags = {"project": rng.choice(_PROJECTS.get(domain, ("misc",)))}
            if rng.random() < 0.4:
                tags["ticket"] = f"{tags['project'][:3].upper()}-{rng.randint(100, 999)}"
            cur = self.sessions[name] = _Session(self._uuid(), rng.randint(15, 60), tags, [])
            self.started += 1
        cur.left -= 1
        return cur

    def attribute(self, name: str, domain: str, headers: dict[str, str], body: dict[str, Any], in_burst: bool) -> None:
        """Session, agent and tag headers (or ``metadata.user_id``) as that account's Claude Code sends them."""
        if domain == "ci.example.com":
            return  # a script on the SDK: no session
        rng = self.rng
        sess = self._session_for(name, domain)
        headers["user-agent"] = CLAUDE_CODE_UA
        headers["x-app"] = "cli"
        for tag, value in sess.tags.items():
            headers[f"x-nexus-tag-{tag}"] = value
        if domain == "research.example.org":
            body["metadata"] = {"user_id": orjson.dumps({"device_id": f"{sum(map(ord, name)):08x}" * 8,
                                                         "account_uuid": "", "session_id": sess.id}).decode()}
            headers["user-agent"] = "claude-cli/1.0.88 (external, cli)"
            return
        if name == "bob":
            body["metadata"] = {"user_id": f"user_{'b0b' * 21}b_account__session_{sess.id}"}
            headers["user-agent"] = "claude-cli/1.0.20 (external, cli)"
            return
        headers["x-claude-code-session-id"] = sess.id
        agent: tuple[str, str | None] | None = None
        if in_burst:
            # A burst is the session's sub-agents at work: a new one, or a child of one (depth 2).
            if not sess.agents or rng.random() < 0.3:
                parent = rng.choice(sess.agents)[0] if sess.agents and rng.random() < 0.5 else None
                agent = (f"agent-{rng.getrandbits(32):08x}", parent)
                sess.agents.append(agent)
            else:
                agent = rng.choice(sess.agents[-4:])
        elif sess.agents and rng.random() < 0.15:
            agent = rng.choice(sess.agents)
        if agent is not None:
            headers["x-claude-code-agent-id"] = agent[0]
            if agent[1] is not None:
                headers["x-claude-code-parent-agent-id"] = agent[1]
