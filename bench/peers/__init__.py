"""The peers' side of the benchmark, run from bench/.venv-peers (Celery 5, pgqueuer 1.6).
Standard library plus the peers' own packages only: no Django, no djq."""
