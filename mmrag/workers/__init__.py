"""Model work as tasks: run in-process (embedded) or by Celery workers (distributed)."""
