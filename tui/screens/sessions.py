"""``s``: live sessions (Claude Code and any client that names one), and Enter into one of them.

The list is ``/api/sessions`` (the server's sessions read model), most recent activity first,
re-polled while the screen is up so costs tick; Enter opens ``/api/sessions/{id}``: the agent tree
(indented, per-agent cost) and the session's requests, where Enter again is the request drill-down.
``/`` filters with ``session:<id prefix>``, ``tag:project=apollo``, ``client:claude-cli``.
Polls run in workers (one at a time), so a slow API never freezes the keyboard.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from tui import fmt
from tui.api.client import DashboardClient
from tui.api.errors import ApiError
from tui.api.models import RequestEvent
from tui.api.sessions import Session, SessionAgent, SessionDetail, SessionFilter
from tui.screens.request import RequestScreen
from tui.widgets.vlist import VirtualTable

SHORT_ID = 8


def short_id(value: str | None) -> str:
    return (value or "")[:SHORT_ID] or fmt.DASH


def ago(dt: datetime | None, now: datetime) -> str:
    if dt is None:
        return fmt.DASH
    return fmt.short_duration(max(0.0, (now - dt).total_seconds()))


def _cost(v: float | None, unpriced: int = 0) -> Any:
    if v is None:
        return Text(fmt.UNPRICED, style="yellow")
    text = fmt.usd(v)
    return Text(text + "*", style="yellow") if unpriced else text


def _models(models: list[str]) -> str:
    return ",".join(fmt.short_model(m) for m in models) or fmt.DASH


def _tags(tags: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in tags.items()) or fmt.DASH


def _share(share: dict[str, float] | None, window: str = "5h") -> str:
    if not share or window not in share:
        return fmt.DASH
    return f"{share[window] * 100:.1f}%"


class SessionTable(VirtualTable):
    # Most telling first: at 80 columns the right-most are the ones cut off.
    COLUMNS = [
        ("session", "session", SHORT_ID), ("last", "last", 4), ("cost", "cost", 8), ("req", "req", 4),
        ("tokens", "tokens", 6), ("5h", "quota 5h", 5), ("ag", "agents", 2), ("models", "models", 14),
        ("client", "client", 18),
        ("tags", "tags", 24),
    ]
    MAX_ROWS = 500


def session_cells(s: Session, now: datetime) -> tuple:
    marker = Text("●", style="green") if s.active else Text("○", style="dim")
    sid = Text.assemble(marker, " ", short_id(s.session_id)[: SHORT_ID - 2])
    req = Text(str(s.requests), style="red" if s.errors else "")
    return (sid, ago(s.last_seen, now), _cost(s.cost_usd, s.unpriced), req, fmt.tokens(s.tokens.total),
            _share(s.quota_share), str(s.agents), _models(s.models), s.client or fmt.DASH, _tags(s.tags))


class AgentTable(VirtualTable):
    COLUMNS = [("agent", "agent", 22), ("req", "req", 4), ("tokens", "tokens", 6), ("cost", "cost", 8),
               ("models", "models", 20)]
    DEFAULT_CSS = "AgentTable { height: auto; max-height: 9; }"


def agent_cells(a: SessionAgent) -> tuple:
    name = "main" if a.agent_id is None else a.agent_id
    label = Text("  " * a.depth + ("└ " if a.depth else "") + name, style="bold" if a.depth == 0 else "")
    return (label, str(a.requests), fmt.tokens(a.tokens.total), _cost(a.cost_usd), _models(a.models))


class SessionRequestTable(VirtualTable):
    COLUMNS = [("time", "time", 8), ("st", "status", 3), ("agent", "agent", 10), ("model", "model", 10),
               ("latency", "latency", 7), ("tokens", "tokens", 6), ("cost", "cost", 8)]


def request_cells(ev: RequestEvent) -> tuple:
    status = Text(str(ev.status), style="bold red" if ev.is_error else "green")
    cost = fmt.usd(ev.cost_usd) if ev.cost_usd is not None else fmt.DASH
    return (fmt.clock(ev.time), status, short_id(ev.agent_id) if ev.agent_id else "main",
            fmt.short_model(ev.model), fmt.ms(ev.latency_ms), fmt.tokens(ev.tokens.total), cost)


class _Polling(Screen):
    """A screen that re-polls while it is up, one request at a time."""

    DEFAULT_CSS = """
    #filter-input { dock: bottom; display: none; }
    #filter-input.-shown { display: block; }
    SessionTable, AgentTable, SessionRequestTable { border: round $accent; }
    #sessions-head, #session-head { padding: 0 1; }
    """

    def __init__(self, client: DashboardClient, poll_interval: float = 2.0,
                 now: Any = None) -> None:
        super().__init__()
        self.client = client
        self.poll_interval = poll_interval
        self.now = now or (lambda: datetime.now(UTC))
        self.loads = 0
        self._loading = False

    def on_mount(self) -> None:
        self.set_interval(self.poll_interval, self._poll, name="sessions-poll")
        self._poll()

    def _poll(self) -> None:
        if not self._loading:
            self._loading = True
            self.run_worker(self._load_once(), group="sessions", exit_on_error=False)

    async def _load_once(self) -> None:
        try:
            await self.load()
        finally:
            self._loading = False
            self.loads += 1

    async def load(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def action_refresh(self) -> None:
        self._poll()


class SessionsScreen(_Polling):
    BINDINGS = [
        Binding("escape,q", "back", "Back", key_display="q/Esc"),
        Binding("s", "app.pop_screen", "Back", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("r", "refresh", "Refresh", show=False),
    ]

    def __init__(self, client: DashboardClient, poll_interval: float = 2.0, now: Any = None,
                 filter_text: str = "") -> None:
        super().__init__(client, poll_interval, now)
        self.filter = SessionFilter.parse(filter_text)
        self.sessions: list[Session] = []
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("loading sessions …", style="dim"), id="sessions-head")
        yield SessionTable(id="sessions-table")
        yield Input(value=self.filter.text, placeholder="session:<id> tag:project=apollo client:claude-cli",
                    id="filter-input")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(SessionTable)
        table.border_title = "Sessions"
        table.focus()
        super().on_mount()

    async def load(self) -> None:
        try:
            self.sessions = await self.client.sessions(self.filter)
            self.error = None
        except ApiError as exc:
            self.error = str(exc)
        self.show()

    def show(self) -> None:
        now = self.now()
        table = self.query_one(SessionTable)
        table.set_rows([(s.session_id, session_cells(s, now)) for s in self.sessions])
        head = self.query_one("#sessions-head", Static)
        if self.error:
            head.update(Text(f"could not load sessions: {self.error}", style="bold red"))
            return
        active = sum(1 for s in self.sessions if s.active)
        cost = sum(s.cost_usd or 0.0 for s in self.sessions)
        line = Text.assemble((f"{len(self.sessions)} sessions", "bold"), f" · {active} active · ",
                             (fmt.usd(cost), "bold"), " total")
        if self.filter.text:
            line.append(f" · filter {self.filter.text}", style="cyan")
        line.append("  (Enter open · / filter · Esc back)", style="dim")
        head.update(line)

    def export_document(self) -> tuple[str, dict[str, Any]] | None:
        """``e``: the sessions listed, as the API gave them, with the filter that chose them."""
        if not self.loads:
            return None
        return "sessions", {"filter": self.filter.text, "sessions": [s.raw for s in self.sessions]}

    def action_filter(self) -> None:
        box = self.query_one("#filter-input", Input)
        box.add_class("-shown")
        box.focus()

    def action_back(self) -> None:
        box = self.query_one("#filter-input", Input)
        if box.has_class("-shown"):
            box.remove_class("-shown")
            self.query_one(SessionTable).focus()
            return
        self.app.pop_screen()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.filter = SessionFilter.parse(event.value)
        event.input.remove_class("-shown")
        self.query_one(SessionTable).focus()
        self._poll()

    def on_virtual_table_selected(self, event: VirtualTable.Selected) -> None:
        event.stop()
        self.app.push_screen(SessionDetailScreen(self.client, event.request_id, self.poll_interval, self.now))


class SessionDetailScreen(_Polling):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", key_display="q/Esc"),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("tab", "focus_next", "Next table", show=False),
    ]

    def __init__(self, client: DashboardClient, session_id: str, poll_interval: float = 2.0,
                 now: Any = None) -> None:
        super().__init__(client, poll_interval, now)
        self.session_id = session_id
        self.detail: SessionDetail | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"loading session {self.session_id} …", style="dim"), id="session-head")
        yield AgentTable(id="agents-table")
        yield SessionRequestTable(id="session-requests")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(AgentTable).border_title = "Agents"
        requests = self.query_one(SessionRequestTable)
        requests.border_title = "Requests (Enter: drill down)"
        requests.focus()
        super().on_mount()

    def export_document(self) -> tuple[str, dict[str, Any]] | None:
        """``e``: this session (its agents and requests), as the API gave it."""
        return None if self.detail is None else (f"session-{self.session_id}", {"session": self.detail.raw})

    async def load(self) -> None:
        try:
            self.detail = await self.client.session(self.session_id)
            self.error = None
        except ApiError as exc:
            self.error = str(exc)
        self.show()

    def show(self) -> None:
        head = self.query_one("#session-head", Static)
        if self.error or self.detail is None:
            head.update(Text(f"could not load session: {self.error}", style="bold red"))
            return
        d = self.detail
        s = d.session
        now = self.now()
        state = Text("active", style="green") if s.active else Text("idle", style="dim")
        head.update(Text.assemble(
            ("Session ", "bold"), (s.session_id, "bold cyan"), "  ", state, "\n",
            f"{s.client or fmt.DASH} · {s.account_id or fmt.DASH} · last {ago(s.last_seen, now)} ago",
            f" · tags {_tags(s.tags)}\n",
            (f"{s.requests} requests", "bold"), f" ({s.errors} errors) · {fmt.tokens(s.tokens.total)} tokens · ",
            (fmt.usd(s.cost_usd) if s.cost_usd is not None else fmt.UNPRICED, "bold"),
            f" · quota 5h {_share(d.quota_share, '5h')} 7d {_share(d.quota_share, '7d')}",
            (" (estimate)" if (d.quota_note or "").startswith("estimate") else "", "yellow")))
        agents = self.query_one(AgentTable)
        agents.set_rows([(a.agent_id or "", agent_cells(a)) for a in d.agents])
        agents.styles.height = min(9, len(d.agents) + 3)
        self.query_one(SessionRequestTable).set_rows([(r.id, request_cells(r)) for r in d.requests])

    def on_virtual_table_selected(self, event: VirtualTable.Selected) -> None:
        event.stop()
        if isinstance(event.table, SessionRequestTable):
            self.app.push_screen(RequestScreen(self.client, event.request_id))
