# syntax=docker/dockerfile:1
# One image recipe for every service; SERVICE picks which (its `python -m services.<SERVICE>`
# is the default command) and EXTRAS its optional dependencies:
#   gateway:              EXTRAS=""        (compose also runs `lookalike migrate` from the gateway's)
#   embedder, detector:   EXTRAS="[ml]"    (CPU-only torch; the embedder's is also the ingest worker's)
#   recommender:          EXTRAS="[ml]"    (the sentence model that reads a shopper's words)
#   scraper:              EXTRAS="[scraper]"
# Build from the repository root, e.g.:
#   docker build --build-arg SERVICE=detector --build-arg EXTRAS="[ml]" -t lookalike/detector .
# The images hold shared/ and services/ only: the lab (training, evaluation, probes, benchmarks)
# stays out, and `lookalike` inside them has no lab commands.
FROM python:3.11-slim

ARG SERVICE=gateway
ARG EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    LOOKALIKE_SERVICE=${SERVICE} \
    LOOKALIKE_DATA_DIR=/data \
    LOOKALIKE_HOST=0.0.0.0 \
    LOOKALIKE_PORT=8000 \
    TORCH_HOME=/data/models/torch

# Non-root user; /data and /data/models are created owned by it, so fresh
# named volumes mounted there start out writable.
RUN useradd --create-home --uid 10001 --user-group app \
 && mkdir -p /data/models \
 && chown -R app:app /data

# Model images: CPU-only torch first, so that `.[ml]` below finds it already satisfied
# (the default PyPI wheels carry CUDA and weigh several GB).
RUN if [ "$EXTRAS" = "[ml]" ]; then \
      pip install --index-url https://download.pytorch.org/whl/cpu \
        torch==2.14.1 torchvision==0.29.1; \
    fi

WORKDIR /app

# Dependencies first, cached until pyproject.toml changes: install against
# empty package stubs, then drop the stub install itself.
COPY pyproject.toml README.md ./
RUN mkdir -p shared services \
 && touch shared/__init__.py services/__init__.py \
 && pip install ".${EXTRAS}" \
 && pip uninstall -y lookalike \
 && rm -rf build *.egg-info

COPY shared/ shared/
COPY services/ services/
RUN pip install --no-deps . && rm -rf build *.egg-info

USER app
EXPOSE 8000
CMD ["sh", "-c", "exec python -m \"services.$LOOKALIKE_SERVICE\""]
