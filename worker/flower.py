"""Celery's dashboard, Flower, behind basic auth: `python -m worker.flower [flower options]`.

It runs `celery -A worker.celery_app flower` (the workers' own app, so the same Redis from
FACEEDIT_REDIS_URL) and refuses to start unless FLOWER_BASIC_AUTH holds `user:password`
(several, comma-separated): a dashboard that shows every job's arguments and can revoke them is
never served open. Like FACEEDIT_API_KEY for the API, the secret comes from the environment, and
Flower reads it from there (it is not put on a command line that `ps` shows). Flower's other
options come as arguments or FLOWER_* variables (FLOWER_PORT, FLOWER_URL_PREFIX, ...).
"""

from __future__ import annotations

import os
import sys


def _auth_problem(value: str) -> str | None:
    if not value:
        return "FLOWER_BASIC_AUTH is not set"
    for pair in value.split(","):
        user, sep, password = pair.partition(":")
        if not (sep and user and password):
            return "FLOWER_BASIC_AUTH must be user:password (comma-separated for several)"
    return None


def main(argv: list[str]) -> int:
    problem = _auth_problem(os.environ.get("FLOWER_BASIC_AUTH", ""))
    if problem:
        print(f"worker.flower: {problem}; the dashboard is not served without it", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "flower", *argv]
    os.execv(sys.executable, command)
    return 0  # not reached: the process is now Flower


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
