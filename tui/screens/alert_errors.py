"""Enter on an alert: the errors of its time window (``/api/errors?since=&until=``).

An alert about one account (a limit, a budget) lists that account's errors only. The window opens
``LEAD_S`` before the alert fired, because what made a rule fire happened before
it fired (the error-rate rule judges the last minutes), and closes when it resolved (or now, while
it still fires). Counts by status and type on top, then every error row, newest first; Enter opens
one (the app's drill-down). Fetched in a worker; refreshed while the alert is still firing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui import fmt
from tui.api.client import DashboardClient
from tui.api.models import Alert
from tui.api.reports import ErrorsReport
from tui.panels.errors import ErrorsPanel, error_cells
from tui.widgets.vlist import VirtualTable

LEAD_S = 300  # the window opens 5 minutes before the alert fired
LIMIT = 500  # the API's largest page


def alert_window(alert: Alert, now: datetime) -> tuple[datetime, datetime]:
    fired = alert.fired_at or now
    end = alert.resolved_at or now
    return fired - timedelta(seconds=LEAD_S), max(end, fired) + timedelta(seconds=1)


def summary_text(alert: Alert, since: datetime, until: datetime, report: ErrorsReport | None,
                 failed: str | None = None) -> Text:
    t = Text(no_wrap=False)
    t.append(f"{alert.rule}", style="bold")
    t.append(f"  fired {fmt.clock(alert.fired_at)}", style="")
    t.append(f"  resolved {fmt.clock(alert.resolved_at)}" if alert.resolved_at else "  still firing",
             style="" if alert.resolved_at else "bold red")
    scope = f" of {alert.account}" if alert.account else ""
    t.append(f"\nerrors{scope} {fmt.clock(since)} – {fmt.clock(until)} (from {LEAD_S // 60} min before it fired)",
             style="dim")
    if failed is not None:
        t.append(f"\n{failed}", style="bold red")
    elif report is None:
        t.append("\nloading…", style="dim")
    elif report.total == 0:
        t.append("\nno errors were recorded in this window (the rule judged something else: "
                 "latency, cost, limits)", style="yellow")
    else:
        shown = f" (newest {len(report.recent)} listed)" if len(report.recent) < report.total else ""
        t.append(f"\n{report.total:,} errors{shown}: ", style="bold")
        t.append(", ".join(f"{g.status} {g.error_type or ''}".strip() + f" ×{g.count:,}" for g in report.groups[:6]))
    return t


class AlertErrorsTable(VirtualTable):
    """The errors panel's columns, priorities and spare-width column, without its polling."""

    COLUMNS = ErrorsPanel.COLUMNS
    PRIORITY = ErrorsPanel.PRIORITY
    FLEX = ErrorsPanel.FLEX
    MAX_ROWS = LIMIT


class AlertErrorsScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", key_display="q/Esc"),
                Binding("r", "reload", "Reload")]

    def __init__(self, client: DashboardClient, alert: Alert,
                 now: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.client = client
        self.alert = alert
        self.now = now or (lambda: datetime.now(UTC))
        self.report: ErrorsReport | None = None
        self.loads = 0
        self.failed: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="alert-errors-summary")
        yield AlertErrorsTable(id="alert-errors")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(AlertErrorsTable)
        table.border_title = f"Errors around alert {self.alert.rule}"
        table.focus()
        self.action_reload()
        if self.alert.firing:  # the window still grows
            self.set_interval(5.0, self.action_reload, name="alert-errors-reload")

    def export_document(self) -> tuple[str, dict[str, Any]] | None:
        """``e``: the alert and the errors of its window, as the API gave them."""
        if self.report is None:
            return None
        since, until = alert_window(self.alert, self.now())
        return f"alert-{self.alert.id}-errors", {"alert": self.alert.raw, "since": since.isoformat(),
                                                 "until": until.isoformat(), "accountId": self.alert.account,
                                                 "errors": self.report.raw}

    def action_reload(self) -> None:
        self.run_worker(self._load(), exclusive=True, group="alert-errors")

    async def _load(self) -> None:
        since, until = alert_window(self.alert, self.now())
        try:
            report = await self.client.errors_between(since, until, LIMIT, account=self.alert.account)
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the UI
            self.failed = f"could not load the errors: {exc}"
            report = None
        else:
            self.failed = None
            self.report = report
            self.loads += 1
            self.query_one(AlertErrorsTable).set_rows([(e.id, error_cells(e)) for e in report.recent if e.id])
        self.query_one("#alert-errors-summary", Static).update(
            summary_text(self.alert, since, until, self.report, self.failed))
