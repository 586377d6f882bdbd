"""Test settings: the demo project plus a test app whose tasks the workers import.

Worker subprocesses started by the tests read two environment variables:
``DJQ_TEST_DATABASE_NAME`` (the test database pytest-django created) and
``DJQ_TEST_OVERRIDES`` (JSON merged into ``DJQ``), since settings overridden inside a
test do not reach another process.
"""

import json
import os

from demo_project.settings import *  # noqa: F401,F403
from demo_project.settings import DATABASES, DJQ, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp", "django_tasks"]

# Django's Tasks framework (the django-tasks backport on Django 5.2) on djq workers:
# tests/testapp/django_tasks.py declares its tasks.
TASKS = {
    "default": {
        "BACKEND": "djq.backends.DjqBackend",
        "QUEUES": ["default", "queue-1", "dj-high"],
    },
}

if os.environ.get("DJQ_TEST_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["DJQ_TEST_DATABASE_NAME"]
    DATABASES["default"]["TEST"] = {"NAME": os.environ["DJQ_TEST_DATABASE_NAME"]}
else:
    # One test database per pytest run, so runs sharing a server never collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_djq_{os.getpid()}"}

DATABASES["default"]["CONN_MAX_AGE"] = 0

# A process behind PgBouncer (tests/pgbouncer.py) may LISTEN through an alias that
# bypasses it: DJQ["listen_database"] = "direct".
if os.environ.get("DJQ_TEST_LISTEN_DIRECT"):
    DATABASES["direct"] = dict(DATABASES["default"])

# A worker behind the test's TCP proxy (tests/proxy.py) reaches the database through it.
if os.environ.get("DJQ_TEST_DATABASE_PORT"):
    DATABASES["default"]["HOST"] = os.environ.get("DJQ_TEST_DATABASE_HOST") or "127.0.0.1"
    DATABASES["default"]["PORT"] = os.environ["DJQ_TEST_DATABASE_PORT"]

DJQ = {
    **DJQ,
    "task_track_started": False,
    "worker_heartbeat_interval": 0.5,
    "worker_lease": 4.0,
    "api_enqueue_allowlist": [],  # the demo's list is the demo's; tests set their own
    **json.loads(os.environ.get("DJQ_TEST_OVERRIDES") or "{}"),
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
