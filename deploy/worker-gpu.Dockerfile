# syntax=docker/dockerfile:1
#
# The GPU worker image: `cutout worker` with CUTOUT_DEVICE=cuda on ONNX Runtime's CUDA
# provider. One process per GPU: CUDA does not survive fork, so `cutout worker` picks the
# solo pool for cuda, and each container is given exactly one GPU (compose: device
# reservation count 1; Kubernetes: nvidia.com/gpu: 1). Run more containers for more GPUs.
#
#   docker build -f deploy/worker-gpu.Dockerfile -t cutout-worker-gpu .
#
# CUDA and onnxruntime-gpu must match in their major versions: onnxruntime-gpu up to 1.26
# is built for CUDA 12 and cuDNN 9, from 1.27 on for CUDA 13 and cuDNN 9 (from the
# packages' declared `cuda`/`cudnn` extras). CUDA 12 runs on drivers >= 525, CUDA 13 needs
# >= 580. For CUDA 13 build with
#   --build-arg CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04 \
#   --build-arg ONNXRUNTIME_GPU="onnxruntime-gpu>=1.27"
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
# The `gpu` extra's package, held to the CUDA major of the base image
ARG ONNXRUNTIME_GPU="onnxruntime-gpu>=1.20,<1.27"
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Ubuntu 24.04's Python is 3.12 (pyproject asks for >= 3.11); the CPU images use 3.11
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/cutout
ENV PATH=/opt/cutout/bin:$PATH

# The worker's dependencies with onnxruntime-gpu in place of onnxruntime. Never both: the
# two distributions install the same `onnxruntime` module, and whichever lands last wins,
# so `pip install .[gpu]` (which also pulls the CPU package from the main list) would
# leave an engine that silently has no CUDA provider. Hence --no-deps for the package.
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
        "${ONNXRUNTIME_GPU}" \
        "onnx>=1.16" \
        "pymatting>=1.1.12" \
        "opencv-python-headless>=4.9" \
        "scipy>=1.11" \
        "tqdm>=4.66"

WORKDIR /src
COPY . .
# The build fails if the CPU package got in, or if this onnxruntime has no CUDA provider
# compiled in (get_available_providers() lists what was built, no GPU needed to ask).
RUN pip install --no-deps . \
    && ! pip show --quiet onnxruntime 2>/dev/null \
    && python -c "import onnxruntime as ort, sys; sys.exit('CUDAExecutionProvider' not in ort.get_available_providers())" \
    && cutout worker --help >/dev/null

ENV CUTOUT_MODEL_HOME=/models
RUN cutout models fetch u2net u2netp \
    && rm -f /models/.*.lock \
    && chmod 0755 /models \
    && chmod 0644 /models/*.onnx


FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/cutout cutout \
    && install -d -o 10001 -g 10001 /var/cache/cutout/numba
COPY --from=build /opt/cutout /opt/cutout
COPY --from=build /models /models
# The base image sets NVIDIA_VISIBLE_DEVICES=all and NVIDIA_DRIVER_CAPABILITIES=compute,utility
# and puts the CUDA and cuDNN libraries on the loader path; the NVIDIA container runtime
# mounts the driver. CUTOUT_DEVICE=cuda makes a worker without a working CUDA provider
# refuse to start instead of falling back to the CPU.
ENV PATH=/opt/cutout/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CUTOUT_MODEL_HOME=/models \
    CUTOUT_DEVICE=cuda \
    CUTOUT_WORKER_CONCURRENCY=1 \
    NUMBA_CACHE_DIR=/var/cache/cutout/numba
# NUMBA_CACHE_DIR: alpha matting's compiled kernels, in the same folder as the CPU
# worker image's (worker.Dockerfile says why)
USER 10001
WORKDIR /home/cutout
CMD ["cutout", "worker"]
