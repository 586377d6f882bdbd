"""djq's REST API: DRF viewsets over tasks, workers, queues and stats (``djq.api.urls``)."""
