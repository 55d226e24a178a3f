"""Deployment files stay true to the code: PromQL only names metrics a real /metrics scrape has,
the example config holds every setting, the systemd unit runs the proxy."""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from nexus.core.settings import KEYS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "nexus-dashboard.json"
UNIT = ROOT / "deploy" / "systemd" / "nexus-proxy.service"
TOML_EXAMPLE = ROOT / "nexus.toml.example"

# PromQL words that look like identifiers but are not metric names.
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "increase", "irate", "histogram_quantile", "by", "without",
    "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "le", "type",
    "instance", "error_type", "status", "domain", "model", "job", "topk", "bottomk", "abs", "clamp_min",
    "vector", "scalar", "time", "account", "window", "kind",  # grouping labels, not metrics
}


def alert_rules() -> list[dict[str, str]]:
    """The rules of alerts.yml (no YAML library needed: one ``- alert:`` block per rule, one-line exprs)."""
    text = ALERTS.read_text()
    assert re.search(r"^groups:\s*$", text, re.M) and re.search(r"^\s+rules:\s*$", text, re.M)
    rules = []
    for block in re.split(r"^\s+- alert: ", text, flags=re.M)[1:]:
        name = block.splitlines()[0].strip()
        expr = re.search(r"^\s+expr: '(.*)'\s*$", block, re.M)
        dur = re.search(r"^\s+for: (\d+[smhd])\s*$", block, re.M)
        sev = re.search(r"^\s+severity: (\w+)\s*$", block, re.M)
        summary = re.search(r"^\s+summary: (.+)$", block, re.M)
        assert expr and dur and sev and summary, f"rule {name} is missing expr/for/severity/summary"
        rules.append({"alert": name, "expr": expr.group(1), "for": dur.group(1), "severity": sev.group(1),
                      "summary": summary.group(1).strip()})
    return rules


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """Every metric name an expression selects."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values are not names
    expr = re.sub(r"\{[^}]*\}", "{}", expr)
    names = set()
    for m in re.finditer(r"(?<![\w$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr):
        word = m.group(1)
        if word in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def label_matchers(expr: str) -> list[tuple[str, str]]:
    """(metric, label) for each ``metric{label=...}`` matcher."""
    out = []
    for m in re.finditer(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", expr):
        for lm in re.finditer(r"(\w+)\s*(=~|!~|!=|=)", m.group(2)):
            out.append((m.group(1), lm.group(1)))
    return out


def test_alert_rules_are_the_guides_four_and_more():
    rules = {r["alert"]: r for r in alert_rules()}
    assert rules["ClaudeProxyHighErrorRate"]["for"] == "5m" and "> 0.05" in rules["ClaudeProxyHighErrorRate"]["expr"]
    assert "0.8 *" in rules["ClaudeProxyTokenLimitApproaching"]["expr"]
    assert "> 0.9" in rules["ClaudeProxyDatabasePoolExhausted"]["expr"]
    p95 = rules["ClaudeProxyPerformanceDegradation"]
    assert p95["for"] == "10m" and "histogram_quantile(0.95" in p95["expr"] and "> 10000" in p95["expr"]
    assert {r["summary"] for r in rules.values()} >= {
        "High error rate detected", "Token limit approaching", "Database connection pool exhausted",
        "Performance degradation detected"}


def test_grafana_dashboard_has_the_panels_users_need():
    dash = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"] for p in dash["panels"]).lower()
    for word in ("request rate", "latency", "token", "error", "cost", "database pool"):
        assert word in titles
    exprs = " ".join(dashboard_exprs())
    assert "histogram_quantile(0.50" in exprs and "histogram_quantile(0.95" in exprs
    assert "sum by (type)" in exprs and "sum by (error_type)" in exprs
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_metric_name_extraction():
    assert metric_names('sum by (le) (rate(foo_bucket{type=~"a|b"}[5m])) / bar > 0.9') == {"foo_bucket", "bar"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket[$__rate_interval])))") == {"x_bucket"}


async def test_every_promql_metric_exists_in_a_real_scrape(stack):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    hdr = {"x-api-key": "sk-ant-deploy-files-0001", "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=30) as c:
        await c.post("/v1/messages", json=body, headers={**hdr, "x-mock-cache-read": "10", "x-mock-cache-write": "5"})
        async with c.stream("POST", "/v1/messages", json={**body, "stream": True}, headers=hdr) as r:
            await r.aread()
        await c.post("/v1/messages", json=body, headers={**hdr, "x-mock-status": "529"})
        await c.post("/v1/messages", json={**body, "model": "no-such-model-x"}, headers=hdr)
        # a subscription credential: the unified rate-limit family (utilization, status)
        await c.post("/v1/messages", json=body, headers={"authorization": "Bearer sk-ant-oat01-deploy-files",
                                                         "anthropic-version": "2023-06-01"})
        await stack.wait_rows(5)
        scrape = (await c.get("/metrics")).text
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scrape):
        for s in family.samples:
            samples.setdefault(s.name, set()).update(s.labels)
    assert "claude_proxy_response_time_bucket" in samples
    used: dict[str, str] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            used[name] = f"alerts.yml {rule['alert']}"
        for metric, label in label_matchers(rule["expr"]):
            assert label in samples.get(metric, set()), f"{metric} has no label {label}"
    for expr in dashboard_exprs():
        for name in metric_names(expr):
            used[name] = f"dashboard: {expr}"
        for metric, label in label_matchers(expr):
            assert label in samples.get(metric, set()), f"{metric} has no label {label}"
    assert len(used) >= 12
    missing = {name: where for name, where in used.items() if name not in samples}
    assert not missing, f"metrics used but not exported: {missing}"
    # grouping labels used by the dashboard exist on their metrics
    for metric, label in (("claude_proxy_tokens_total", "type"), ("claude_proxy_errors_total", "error_type"),
                          ("claude_proxy_requests_total", "status")):
        assert label in samples[metric]


def test_example_config_holds_every_setting_and_loads():
    text = TOML_EXAMPLE.read_text()
    tomllib.loads(text)
    for key in KEYS.values():
        assert re.search(rf"^(# )?{key.name} = ", text, re.M), f"nexus.toml.example lacks {key.name}"
    loaded = load_settings({}, TOML_EXAMPLE)
    defaults = Settings()
    differs = [env for env in KEYS if loaded.value(env) != defaults.value(env)]
    assert differs == [], "the example's uncommented values must be the defaults"
    # and the commented examples are valid too
    uncommented = re.sub(r"^# ([a-z_0-9]+ = )", r"\1", text, flags=re.M)
    tomllib.loads(uncommented)


def test_systemd_unit_runs_the_proxy():
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string(UNIT.read_text())
    svc = cp["Service"]
    assert svc["ExecStart"].split()[-2:] == ["nexus", "proxy"] or svc["ExecStart"].endswith("nexus proxy")
    assert svc["KillSignal"] == "SIGTERM" and svc["Restart"] == "on-failure"
    assert int(svc["TimeoutStopSec"]) > Settings().proxy.shutdown_grace_s
    assert "LOG_JSON=1" in UNIT.read_text()
    assert cp["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in cp["Unit"]["After"]
