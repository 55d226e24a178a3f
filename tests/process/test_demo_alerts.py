"""`nexus demo` shows alerts end to end: a forced error burst fires the error-rate rule and the
alert is delivered as a webhook (to the demo's capture endpoint), all through real processes."""

from __future__ import annotations

import subprocess
import sys

from tests.support.env import clean_env


def test_headless_demo_incident_fires_an_alert_and_delivers_a_webhook(tmp_path):
    env = clean_env()
    # Short rule durations keep the test bounded; the demo's own defaults are 60 s / 5 s.
    env.update({"NEXUS_DATA_DIR": str(tmp_path), "ALERT_ERROR_RATE_WINDOW_S": "5",
                "ALERT_EVAL_INTERVAL_S": "1", "ALERT_LOOKBACK_S": "10", "ALERT_MIN_REQUESTS": "5"})
    proc = subprocess.run(
        [sys.executable, "-m", "nexus", "demo", "--headless", "--duration", "30", "--incident-at", "1",
         "--rate", "10"],
        capture_output=True, text=True, env=env, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "force an error burst" in proc.stderr
    out = proc.stdout
    alerts_line = next(line for line in out.splitlines() if line.strip().startswith("alerts"))
    assert "error_rate" in alerts_line, out
    hooks_line = next(line for line in out.splitlines() if line.strip().startswith("webhooks"))
    assert int(hooks_line.split()[1]) >= 1, out
