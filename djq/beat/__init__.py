"""Periodic tasks (Celery beat, in the database): schedule rows, the scheduler that fires
them exactly once per fire time however many run, and ``beat_schedule`` synchronisation.

``models`` describes the rows (imported by :mod:`djq.models`), ``sql`` owns the scheduler's
SQL, ``sync`` reads ``DJQ["beat_schedule"]``, ``scheduler`` runs the loop. Importing this
package imports no models.
"""
