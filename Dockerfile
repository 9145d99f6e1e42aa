# syntax=docker/dockerfile:1
# One image for every part of Conversion Tracking. The entrypoint is the `convtrack` console
# script; Kubernetes passes the subcommand as args: api | ivr | aggregator | migrate.
#   docker build -t convtrack:dev .
#   docker run --rm convtrack:dev migrate --print

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the project and its dependencies in a self-contained virtualenv ----------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/convtrack
WORKDIR /src
# .dockerignore keeps tests, docs, deploy/ and local virtualenvs out of the context.
COPY . .
# A regular (not editable) install: the runtime stage needs no source tree. No compiler needed:
# the compiled dependencies (gevent, clickhouse-driver, pydantic-core) ship manylinux wheels for
# CPython 3.11 and greenswitch is pure Python. The last command proves the console script starts.
RUN /opt/convtrack/bin/pip install --upgrade pip \
 && /opt/convtrack/bin/pip install . \
 && /opt/convtrack/bin/convtrack --help > /dev/null

# ---- runtime: Python, the virtualenv, espeak-ng + sox, a non-root user ---------------------
FROM ${PYTHON_IMAGE} AS runtime
# espeak-ng and sox render text prompts to WAV in the API (offline text-to-speech); nothing
# else from Debian is needed at runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng sox \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid/gid: Kubernetes can only verify runAsNonRoot for a numeric USER, and the
# manifests (deploy/k8s) run the pods with this same uid and fsGroup.
RUN groupadd --system --gid 10001 convtrack \
 && useradd --system --uid 10001 --gid convtrack --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin convtrack
COPY --from=build /opt/convtrack /opt/convtrack
# The root filesystem is read-only in Kubernetes: no .pyc writes, HOME points at the /tmp
# emptyDir, output is unbuffered so logs reach `kubectl logs` at once.
ENV PATH=/opt/convtrack/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001:10001
# api (CT_API_LISTEN), ivr event socket (CT_IVR_LISTEN), aggregator and ivr health/metrics.
EXPOSE 8080 8084 9102 9103
ENTRYPOINT ["convtrack"]
CMD ["--help"]
