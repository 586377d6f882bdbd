"""The benchmark at tiny sizes, djq only, so that ``python -m bench`` never rots.

It runs ``python -m bench --smoke`` as a subprocess against the test suite's PostgreSQL
server (the bench makes and drops databases of its own there), and checks that it exits 0
and prints the table with the W1 and W2 rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connections

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def server_url() -> str:
    """A URL of the test database server, from Django's settings of the default alias
    (HOST may be a unix socket directory)."""
    s = connections["default"].settings_dict
    user = quote(s.get("USER") or "postgres", safe="")
    password = s.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = quote(s.get("HOST") or "localhost", safe="")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgresql://{auth}{host}{port}/{s.get('NAME') or 'postgres'}"


def test_bench_smoke(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["DATABASE_URL"] = server_url()
    env.pop("DJANGO_SETTINGS_MODULE", None)
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out_json)],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert any(line.startswith("| W1 enqueue") for line in table), proc.stdout
    assert any(line.startswith("| W2 drain, prefork") for line in table), proc.stdout
    data = json.loads(out_json.read_text())
    for workload in ("W1", "W2"):
        (run,) = data["results"][workload]["djq"]
        assert run.get("complete") is True, run
        assert run["value"] > 0, run
