"""The photo pipeline (`worker.pipeline`), the service around it (`worker.service`), and the Celery
worker process that runs its jobs (`worker.celery_app`, `worker.tasks`, `worker.flower`).

Imports go one way: models <- worker.pipeline <- worker.service <- app, and the Celery worker
process (this package's own modules) <- nothing: Celery loads it by name.
"""
