# imagegate: the gRPC gateway, on Debian bookworm's python3 (3.11), run as non-root.
#
#   docker build -t imagegate .        (or buildah bud --format docker, see .ci/docker.sh)
#   docker run -p 50051:50051 -e IMAGEGATE_OPENAI_API_KEY=... imagegate
#   (add -v imagegate-data:/var/lib/imagegate to keep spend across new containers)
#
# Without an OpenAI key the server runs its embedded emulator, so the image also
# works offline. Health: grpc.health.v1 on the serving port ("" and
# "imagegate.v1.ImagesService"), checked by `imagegate healthcheck`.
#
# pip reaches PyPI during the build; behind a TLS-intercepting proxy pass its CA
# bundle as an optional build secret: --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt

ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The two distributions, production dependencies only, pinned by constraints.txt.
COPY constraints.txt pyproject.toml README.md ./
COPY client_stubs/python ./client_stubs/python
COPY service ./service
RUN --mount=type=secret,id=pip_ca \
    --mount=type=cache,id=imagegate-pip,target=/root/.cache/pip,sharing=locked \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && python3 -m venv /opt/imagegate \
 && /opt/imagegate/bin/pip install --disable-pip-version-check --quiet \
        -c constraints.txt ./client_stubs/python . \
 && /opt/imagegate/bin/pip uninstall --yes --quiet setuptools pip \
 && /opt/imagegate/bin/imagegate --help >/dev/null

FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
# python3 for the venv's interpreter; ca-certificates for HTTPS to OpenAI.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 ca-certificates >/dev/null \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin imagegate \
 && install -d -o root -g root -m 0555 /srv/imagegate \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/imagegate
# Configuration before the COPY: buildah's layer cache keeps these steps across
# builds (it does not reuse a COPY --from), and with its vfs driver every step
# costs a copy of the whole file system.
# The data directory (the limits database: spend, rates, calls in flight) is the
# one place the app user writes; a volume, so spend outlives the container. On
# Kubernetes deploy/kubernetes mounts a volume there (its root file system is
# read-only).
ENV PATH=/opt/imagegate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMAGEGATE_DATA_DIR=/var/lib/imagegate
VOLUME ["/var/lib/imagegate"]
EXPOSE 50051
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["imagegate", "healthcheck", "--target", "127.0.0.1:50051", "--timeout", "4"]
# Settings read .env from the working directory: it must be one the app user (or
# anyone else in the container) cannot write, unlike /tmp. Mount a .env here, or
# use IMAGEGATE_* variables and /run/secrets.
WORKDIR /srv/imagegate
USER 10001:10001
ENTRYPOINT ["imagegate", "serve", "--host", "0.0.0.0", "--port", "50051"]
COPY --from=build /opt/imagegate /opt/imagegate
