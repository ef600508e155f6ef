# Images of the face editing service. Targets:
#   api         the FastAPI service (CPU)
#   worker      a Celery worker on the CPU
#   worker-gpu  a Celery worker on a CUDA base image
#   flower      Celery's dashboard, behind basic auth (compose profile "flower")
# The bundled checkpoint (checkpoints/celeba64) is part of the image: nothing downloads at run time.
#
# Build arguments, for machines that cannot pull from Docker Hub or reach PyTorch's index
# (scripts/compose-smoke.sh uses both):
#   PYTHON_IMAGE    the base image: any Debian-like image with python3 (3.11-3.13), its venv module
#                   (Debian: python3-venv) and CA certificates, e.g. one made with debootstrap
#   TORCH_PIP_ARGS  where pip finds the CPU torch wheel: PyTorch's CPU index by default, or e.g.
#                   "--find-links http://127.0.0.1:8765/" for a folder of wheels served on the
#                   host (build with --network host); torch's own dependencies come from PyPI
# Everything is installed into a virtual environment (/opt/venv), so a distribution's own Python
# (which refuses system-wide pip installs, PEP 668) works as well as the official image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"

FROM ${PYTHON_IMAGE} AS cpu-base
ARG TORCH_PIP_ARGS
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH FACEEDIT_CHECKPOINT=/srv/checkpoints/celeba64
WORKDIR /srv
RUN useradd --uid 10001 --no-create-home faceedit && python3 -m venv /opt/venv
# the versions the tests passed with (constraints.txt; torch==2.13.0 there matches the +cpu build)
COPY constraints.txt ./
RUN pip install -c constraints.txt torch==2.13.0 ${TORCH_PIP_ARGS}
COPY pyproject.toml ./
COPY models models
COPY training training
COPY app app
COPY worker worker
RUN pip install -c constraints.txt .
COPY checkpoints checkpoints
USER faceedit

FROM cpu-base AS api
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
# as `make serve` runs it: the app from its factory, uvicorn's connections with a head timeout
CMD ["uvicorn", "--factory", "app.main:create_app", "--http", "app.serve:HeadTimeoutProtocol", "--host", "0.0.0.0", "--port", "8000"]

FROM cpu-base AS worker
CMD ["celery", "-A", "worker.celery_app", "worker", "-Q", "edits", "--loglevel=INFO", "--concurrency=1"]

# Celery's dashboard; refuses to start without FLOWER_BASIC_AUTH (worker/flower.py)
FROM cpu-base AS flower
USER root
RUN pip install -c constraints.txt ".[flower]"
USER faceedit
EXPOSE 5555
CMD ["python", "-m", "worker.flower", "--port=5555"]

# PyPI's torch wheel carries its CUDA libraries; the host's driver comes in through the
# NVIDIA container runtime. The same Python as the other images.
FROM ${PYTHON_IMAGE} AS worker-gpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH FACEEDIT_CHECKPOINT=/srv/checkpoints/celeba64 FACEEDIT_DEVICE=cuda
WORKDIR /srv
RUN useradd --uid 10001 --no-create-home faceedit && python3 -m venv /opt/venv
COPY constraints.txt ./
RUN pip install -c constraints.txt torch==2.13.0
COPY pyproject.toml ./
COPY models models
COPY training training
COPY app app
COPY worker worker
RUN pip install -c constraints.txt .
COPY checkpoints checkpoints
USER faceedit
CMD ["celery", "-A", "worker.celery_app", "worker", "-Q", "edits", "--loglevel=INFO", "--concurrency=1"]
