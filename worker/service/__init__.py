"""The service: what it keeps and decides around the photo pipeline (`worker.pipeline`).

Settings (`settings`), the store of faces, jobs and custom attributes (`store`, `latents`), the
photo memory budget and decoded-face cache (`budget`, `cache`), the faces a later request can
name (`library`), edits (`editor`, `custom`, `attributes`), optimised edits as jobs (`optimized`)
over the queue's protocol (`jobs`), and where jobs run (`runner`: the in-process pool;
`celery_runner` and `celery_config`: the Celery queue over Redis). `service.Service` assembles
them for the API. Imports `worker.pipeline` and `models`, no web framework.
"""
