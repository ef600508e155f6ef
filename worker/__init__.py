"""The service core (worker.core) and the Celery app that runs its jobs (worker.celery_app, .tasks).

Imports go one way: models <- worker.core <- worker.tasks / worker.celery_runner <- app.
worker.core imports neither FastAPI nor Celery; nothing here imports app/ or training/.
"""
