# faultguard image: the REST API on 8080 and Prometheus metrics on 9090.
#
# Build: docker build -t faultguard .
# Run:   docker run -p 8080:8080 -p 9090:9090 -v faultguard-data:/var/lib/faultguard faultguard
#
# tests/test_dockerfile.py checks this file without a container engine: it
# replays the COPY and pip install steps and the CMD in a virtual environment.

# --- build stage: install faultguard and its runtime dependencies into a venv ---
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only the files the wheel is built from, so edits to tests or docs keep the
# install layer cached. README.md is the package's readme and must be present.
COPY pyproject.toml README.md ./
COPY faultguard_core ./faultguard_core

RUN python -m venv /opt/venv
# No extras: the image gets the runtime dependencies only, not [test].
RUN /opt/venv/bin/pip install --no-cache-dir .

# --- runtime stage: the venv, a non-root user and a writable data directory ---
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FAULTGUARD_SERVER__HOST=0.0.0.0 \
    FAULTGUARD_SERVER__PORT=8080 \
    FAULTGUARD_METRICS__HOST=0.0.0.0 \
    FAULTGUARD_METRICS__PORT=9090 \
    FAULTGUARD_STORAGE__PATH=/var/lib/faultguard/fallback.db

# A fixed numeric UID, so Kubernetes `runAsNonRoot` can verify it and volume
# ownership stays the same across rebuilds.
RUN groupadd --system --gid 10001 faultguard \
    && useradd --system --uid 10001 --gid faultguard \
        --home-dir /var/lib/faultguard --shell /usr/sbin/nologin faultguard \
    && mkdir -p /var/lib/faultguard \
    && chown faultguard:faultguard /var/lib/faultguard

COPY --from=build /opt/venv /opt/venv

WORKDIR /var/lib/faultguard
VOLUME ["/var/lib/faultguard"]
USER 10001:10001

EXPOSE 8080 9090

# The slim image has no curl, so the probe uses the standard library. urlopen
# raises on a refused connection or a non-2xx status, and the uncaught
# exception makes python exit 1 (unhealthy).
# NOTE: the probe targets port 8080; if FAULTGUARD_SERVER__PORT changes,
# override the health check too (`docker run --health-cmd ...`).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=3)"]

CMD ["faultguard", "serve"]
