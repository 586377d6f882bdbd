"""djq.contrib.snapshots: a snapshot camera that stores cluster figures in a table.

Add ``"djq.contrib.snapshots"`` to ``INSTALLED_APPS``, migrate, and run::

    python manage.py djq_events --camera djq.contrib.snapshots.camera.Camera --frequency 5

with workers started with ``-E``. Each shutter writes one :class:`~.models.Snapshot` row
for the cluster, one per queue and one per worker; ``on_cleanup`` prunes old ones.
"""
