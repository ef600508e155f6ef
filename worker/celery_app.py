"""The Celery app the workers run: `celery -A worker.celery_app worker -Q edits`.

Built from the settings when this module is imported, which only the workers do: the API's
Celery runner (`worker.service.celery_runner`) builds its own client app, and only in Redis mode.
"""

from __future__ import annotations

from worker.service.celery_config import make_celery
from worker.service.settings import get_core_settings

celery_app = make_celery(get_core_settings())
