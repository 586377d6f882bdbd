from __future__ import annotations

from django.apps import AppConfig


class SnapshotsConfig(AppConfig):
    name = "djq.contrib.snapshots"
    label = "djq_snapshots"
    verbose_name = "djq snapshots"
    default_auto_field = "django.db.models.BigAutoField"
