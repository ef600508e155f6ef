"""What the service does, shared by the API and the Celery workers: the engine (batched
forward passes), faces (detect, align, paste), the store, job records and the job code."""
