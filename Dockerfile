# Images of the face editing service. Targets:
#   api         the FastAPI service (CPU)
#   worker      a Celery worker on the CPU
#   worker-gpu  a Celery worker on a CUDA base image
# The bundled checkpoint (checkpoints/celeba64) is part of the image: nothing downloads at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS cpu-base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml ./
COPY models models
COPY training training
COPY app app
COPY worker worker
RUN pip install .
COPY checkpoints checkpoints
ENV FACEEDIT_CHECKPOINT=/srv/checkpoints/celeba64
RUN useradd --uid 10001 --no-create-home faceedit
USER faceedit

FROM cpu-base AS api
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]

FROM cpu-base AS worker
CMD ["celery", "-A", "worker.celery_app", "worker", "-Q", "edits", "--loglevel=INFO", "--concurrency=1"]

# PyPI's torch wheel carries its CUDA libraries; the host's driver comes in through the
# NVIDIA container runtime. Python 3.11, like the other images: the face detector's wheels need it.
FROM ${PYTHON_IMAGE} AS worker-gpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv
RUN pip install torch==2.13.0
COPY pyproject.toml ./
COPY models models
COPY training training
COPY app app
COPY worker worker
RUN pip install .
COPY checkpoints checkpoints
ENV FACEEDIT_CHECKPOINT=/srv/checkpoints/celeba64 FACEEDIT_DEVICE=cuda
RUN useradd --uid 10001 --no-create-home faceedit
USER faceedit
CMD ["celery", "-A", "worker.celery_app", "worker", "-Q", "edits", "--loglevel=INFO", "--concurrency=1"]
