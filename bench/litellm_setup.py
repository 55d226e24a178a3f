"""The peer baseline: LiteLLM's proxy, its Anthropic pass-through route, no database.

Installed into its own venv (``bench/.venv-litellm``, gitignored) so it never touches ours::

    python3 -m venv bench/.venv-litellm && bench/.venv-litellm/bin/pip install 'litellm[proxy]'

It runs with ``ANTHROPIC_API_BASE`` pointing at the same mock upstream; clients call
``<litellm>/anthropic/v1/messages`` (the pass-through route forwards the body unchanged).
No ``master_key`` and no ``database_url``: the lightest configuration LiteLLM offers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.common import BENCH_DIR, DATA_DIR, Child

VENV = BENCH_DIR / ".venv-litellm"
CONFIG = """\
model_list:
  - model_name: claude-sonnet-4-5-20250929
    litellm_params:
      model: anthropic/claude-sonnet-4-5-20250929
general_settings: {}
litellm_settings:
  set_verbose: false
  json_logs: false
"""


def available() -> str | None:
    """None if LiteLLM can run here, else why not."""
    exe = VENV / "bin" / "litellm"
    if not exe.exists():
        return f"{exe} missing: run `python3 -m venv {VENV} && {VENV}/bin/pip install 'litellm[proxy]'`"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(upstream: str, timeout: float = 120.0) -> Child:
    """Start LiteLLM's proxy in front of ``upstream``; wait until the pass-through answers."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    cfg = DATA_DIR / "litellm.yaml"
    cfg.write_text(CONFIG)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LITELLM_"))}
    env.update({
        "ANTHROPIC_API_BASE": upstream, "ANTHROPIC_API_KEY": "sk-ant-bench-0000000000000000",
        "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_DOCS": "True",
        # No master key (no auth check per request): the lightest set-up; allowed on loopback only.
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
    })
    log = open(DATA_DIR / "litellm.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([str(VENV / "bin" / "litellm"), "--config", str(cfg), "--host", "127.0.0.1",
                             "--port", str(port), "--num_workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=DATA_DIR)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    body = (b'{"model":"claude-sonnet-4-5-20250929","max_tokens":8,'
            b'"messages":[{"role":"user","content":"hi"}]}')
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"LiteLLM exited with {proc.returncode}; see {DATA_DIR / 'litellm.log'}")
        try:
            req = urllib.request.Request(url + "/anthropic/v1/messages", data=body, method="POST", headers={
                "content-type": "application/json", "x-api-key": "sk-ant-bench-0000000000000000",
                "anthropic-version": "2023-06-01"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return Child(proc, {"proxy_url": url + "/anthropic", "version": version()})
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"LiteLLM did not answer within {timeout}s; see {DATA_DIR / 'litellm.log'}")


def version() -> str:
    for p in (VENV / "lib").glob("python*/site-packages/litellm-*.dist-info"):
        return p.name.split("-")[1].removesuffix(".dist")
    return "?"


if __name__ == "__main__":  # manual check: python -m bench.litellm_setup UPSTREAM
    import sys

    c = start(sys.argv[1])
    print(c.info, flush=True)
    Path("/dev/null").write_text("")
    c.stop()
