# RePIC API image: a virtual environment built in one stage, copied into a slim runtime that
# runs as an unprivileged user. The VLM itself runs in its own vLLM container (docker-compose.yml).
#
#   docker build -t repic-service .                           # CPU PyTorch (default)
#   docker build --build-arg TORCH_VARIANT=cu128 -t repic-service:cu128 .
#   docker build --build-arg REPIC_EXTRAS=train -t repic-service:train .

# The web UI (web/: TypeScript and the generated SDK, bundled by esbuild) into app/ui_dist.
FROM node:20.19.0-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY clients/typescript/src /src/clients/typescript/src
COPY web/ ./
RUN npm run build


FROM python:3.11.14-slim-bookworm AS builder

# Must match the torch/torchvision pins in pyproject.toml (a test checks this).
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
# A wheel index of download.pytorch.org: cpu, or a CUDA build offered for TORCH_VERSION.
ARG TORCH_VARIANT=cpu
# Comma-separated optional dependency groups of pyproject.toml, e.g. "train".
ARG REPIC_EXTRAS=""

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /venv
ENV PATH="/venv/bin:${PATH}"
WORKDIR /src

# torch first and from the PyTorch index alone: PyPI's default Linux wheel drags in CUDA.
RUN pip install --no-cache-dir --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

# Dependencies in their own layer, keyed on pyproject.toml alone, so code edits rebuild in seconds.
COPY pyproject.toml ./
COPY docker/pyproject_requirements.py docker/
RUN python docker/pyproject_requirements.py pyproject.toml "${REPIC_EXTRAS}" > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt

COPY . .
COPY --from=web /src/app/ui_dist app/ui_dist
RUN pip install --no-cache-dir --no-deps .


FROM python:3.11.14-slim-bookworm AS runtime

ENV PATH="/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/home/repic/.cache/huggingface \
    REPIC_DATA_DIR=/data

# Fixed ids so named volumes keep working across rebuilds.
RUN groupadd --system --gid 10001 repic \
    && useradd --system --uid 10001 --gid repic --home-dir /home/repic --create-home \
        --shell /usr/sbin/nologin repic \
    && mkdir -p /data /home/repic/.cache/huggingface \
    && chown -R repic:repic /data /home/repic

COPY --from=builder /venv /venv
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
COPY docker/prestart.sh docker/wait_for_db.py ./docker/

USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# With no arguments: wait for the database, migrate, serve. With arguments: run them instead,
# e.g. `docker compose run --rm api repic --help`.
ENTRYPOINT ["sh", "/app/docker/prestart.sh"]
