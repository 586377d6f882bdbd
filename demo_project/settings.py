"""Settings of the djq demo project (also the base of the test settings)."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "djq-demo-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "djq",
    "djq.contrib.snapshots",
    "demo_project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "demo_project.wsgi.application"


def database_url() -> str:
    """DATABASE_URL, or the embedded PostgreSQL under .djq/ when it is unset."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from djq.contrib import embedded

    url = embedded.database_url(BASE_DIR / ".djq")
    os.environ["DATABASE_URL"] = url  # processes this one starts use the same server
    return url


DATABASES = {"default": dj_database_url.parse(database_url(), conn_max_age=60)}
# Behind PgBouncer in transaction mode (docs/deployment.md): an alias that reaches
# PostgreSQL directly, for LISTEN only.
if os.environ.get("DJQ_LISTEN_DATABASE_URL"):
    DATABASES["direct"] = dj_database_url.parse(os.environ["DJQ_LISTEN_DATABASE_URL"])

DJQ = {
    "task_track_started": True,
    "listen_database": "direct" if "direct" in DATABASES else None,
    "metrics_token": os.environ.get("DJQ_METRICS_TOKEN") or None,
    # The monitor's "Send a task" form and POST /api/djq/tasks/ offer these.
    "api_enqueue_allowlist": [
        "demo_project.demo.tasks.add",
        "demo_project.demo.tasks.div",
        "demo_project.demo.tasks.long_task",
        "demo_project.demo.tasks.fail",
    ],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"quiet_polling": {"()": "demo_project.logs.QuietPolling"}},
    "formatters": {"server": {"()": "django.utils.log.ServerFormatter",
                              "format": "[{server_time}] {message}", "style": "{"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        # runserver's request lines, without the monitor's polling (a line a second).
        "server": {"class": "logging.StreamHandler", "formatter": "server",
                   "filters": ["quiet_polling"]},
    },
    "loggers": {
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
}
