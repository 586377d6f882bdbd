"""djq's benchmark: ``python -m bench`` (``make bench``) measures djq beside Celery on
Redis and pgqueuer on the same PostgreSQL. See bench/NOTES.md.

This package's ``common`` and ``peers`` modules use the standard library only, since
the peers run them from their own virtualenv (bench/.venv-peers), where neither Django
nor djq is installed.
"""
