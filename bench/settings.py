"""Django settings of the benchmark: the demo project, the ``bench.app`` tasks, djq's
defaults, DEBUG off (it would keep every query in memory), and the ``djq_bench``
database named by ``BENCH_DJQ_DATABASE_URL`` (set by ``python -m bench``)."""

import os

import dj_database_url

from demo_project.settings import *
from demo_project.settings import INSTALLED_APPS

DEBUG = False
INSTALLED_APPS = [*INSTALLED_APPS, "bench.app"]
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("BENCH_DJQ_DATABASE_URL") or os.environ["DATABASE_URL"],
        conn_max_age=60,
    )
}
DJQ: dict[str, object] = {}  # djq's own defaults, as a new user gets them
# W3 through PgBouncer (bench/djq_side.py w3_pooled): LISTEN bypasses the pooler.
if os.environ.get("BENCH_DJQ_LISTEN_URL"):
    DATABASES["direct"] = dj_database_url.parse(os.environ["BENCH_DJQ_LISTEN_URL"])
    DJQ["listen_database"] = "direct"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
