# signdigits: one image for the worker (default), Flower, migrations and the CLI.
#
#   docker build -t signdigits .
#   docker compose up -d --scale worker=4        # see docker-compose.yml and .env.example
#
# Layers: the Python dependencies (the plain package and its `s3` extra) are
# installed from pyproject.toml alone, so editing the code rebuilds only the small layer
# holding our wheel.
#
# Build arguments, for machines without python:3.11-slim or with their own package index
# (scripts/test-docker uses both; nothing is needed for a normal build):
#   BASE_IMAGE    any image with python 3.11 and pip in PATH that installs into the
#                 system as root, e.g. the local one scripts/docker-base makes
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_CERT
#                 pip's own variables, set only while pip runs (not kept in the image's
#                 environment; the values are visible in `docker history`, so never put a
#                 token in them)

ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore


# --- the hand models: from the pinned mediapipe wheel, hashes checked -------------------
# Only serving/hands/models.py (standard library alone) is copied in, so this 36 MB
# download is redone only when the pins change, not on every code change.
FROM base AS hands
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
COPY serving/hands/models.py /tmp/hands/models.py
RUN python -c "import sys, pathlib; sys.path.insert(0, '/tmp/hands'); import models; \
models.fetch_models(pathlib.Path('/hands'), say=print)"


# --- the signdigits wheel, model artifact and migrations inside (package data) ----------
FROM base AS wheel
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && python -c "import glob, sys, zipfile; \
names = zipfile.ZipFile(glob.glob('/wheels/signdigits-*.whl')[0]).namelist(); \
missing = {'signdigits/serving/artifacts/signdigits-hands.keras', \
           'signdigits/serving/artifacts/signdigits-hands.onnx', 'signdigits/db/migrations/env.py', \
           'signdigits/web/templates/base.html', 'signdigits/web/static/common.js'} - set(names); \
extra = {n.split('/')[0] for n in names if not n.split('/')[0].endswith('.dist-info')} - {'signdigits'}; \
sys.exit(f'missing from the wheel (package data): {sorted(missing)}' if missing else \
         f'top-level entries beside signdigits in the wheel: {sorted(extra)}' if extra else 0)" \
 && pip install --no-deps --prefix /install /wheels/signdigits-*.whl


# --- the runtime image ---------------------------------------------------------------------
FROM base
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CERT
RUN groupadd --system signdigits \
 && useradd --system --gid signdigits --create-home --home-dir /home/signdigits \
      --shell /usr/sbin/nologin signdigits

# Dependencies only, read from pyproject.toml, so this layer is rebuilt only when
# pyproject.toml changes: the package's own and its `s3` extra's (boto3: workers and the
# web read s3:// jobs). In the same layer, what serving never loads is removed (65 MB,
# which took the image from 545 to under 500 MB):
# - LiteRT's WebGPU accelerator, NPU vendor plugins, compiler tools and ahead-of-time
#   compilation;
# - ONNX Runtime's model-conversion and quantisation tools;
# - numpy's Fortran wrapper generator (f2py: with the full landmark model's 5.5 MB the
#   image was 499.6 MB, 499 without it);
# - the packages' own test suites, and SQLAlchemy's and Alembic's test helpers;
# - SQLAlchemy's MySQL, SQL Server and Oracle dialects: the settings accept SQLite and
#   PostgreSQL only, and Alembic imports those three for type checking alone (with the
#   helpers, about 4 MB: the image had under 1 MB to spare);
# - botocore's descriptions of AWS's 450 other services (28 MB): only S3's are read, and
#   STS's and SSO's where a profile assumes a role or signs in with SSO.
# The hand finder, the classifier, the migrations and an S3 client were checked to run
# the same without them (tests/test_docker.py).
COPY pyproject.toml /tmp/deps/
RUN set -eux; \
    python -c "import tomllib; \
project = tomllib.load(open('/tmp/deps/pyproject.toml', 'rb'))['project']; \
print('\\n'.join(project['dependencies'] + project['optional-dependencies']['s3']))" \
      > /tmp/deps/requirements.txt; \
    pip install -r /tmp/deps/requirements.txt; \
    rm -rf /tmp/deps; \
    site=$(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"); \
    rm -rf "$site/ai_edge_litert/libLiteRtWebGpuAccelerator.so" "$site/ai_edge_litert/tools" \
           "$site/ai_edge_litert/vendors" "$site/ai_edge_litert/aot" \
           "$site/onnxruntime/transformers" "$site/onnxruntime/quantization" \
           "$site/onnxruntime/tools" "$site/numpy/f2py" \
           "$site/sqlalchemy/testing" "$site/alembic/testing" \
           "$site/sqlalchemy/dialects/mysql" "$site/sqlalchemy/dialects/mssql" \
           "$site/sqlalchemy/dialects/oracle"; \
    find "$site" -depth -type d -name tests -exec rm -rf {} +; \
    find "$site/botocore/data" -mindepth 1 -maxdepth 1 -type d \
      ! -name s3 ! -name sts ! -name sso ! -name sso-oidc -exec rm -rf {} +

# The hand models where `signdigits fetch-hand-models` puts them for this Python
# (sys.prefix /usr/local), before the code: a code change keeps this layer.
COPY --from=hands /hands /usr/local/share/signdigits/hands

# The code: our wheel, installed in the stage above under /install (no dependency
# resolution: they are all in the layer above), copied in as one layer: copying the wheel
# in and deleting it after would keep its megabytes in a layer of their own.
COPY --from=wheel /install /usr/local
RUN python -c "from importlib.resources import files; \
assert all((files('signdigits.serving') / 'artifacts' / f'signdigits-hands.{kind}').is_file() \
           for kind in ('keras', 'onnx')), 'no model'" \
 && signdigits fetch-hand-models >/dev/null \
 && signdigits --help >/dev/null

USER signdigits
WORKDIR /home/signdigits
# The web service's uploads volume and the model registry's volume mount here; made by this
# user, so the volumes are its.
RUN mkdir -p /home/signdigits/uploads /home/signdigits/models

# Healthy once the worker (node signdigits@<container hostname>, the default of
# `signdigits worker`) answers and every pool process has loaded the model (ONNX Runtime:
# about 3 s on 2 cores; start-period leaves room for a loaded machine).
# Other roles (flower, migrate, cli) override or disable this in docker-compose.yml.
HEALTHCHECK --interval=60s --timeout=30s --start-period=30s --retries=3 \
  CMD signdigits ready "signdigits@$HOSTNAME" --timeout 10 >/dev/null || exit 1

CMD ["signdigits", "worker"]
