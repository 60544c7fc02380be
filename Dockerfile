# Keyward: one image for every service of docker-compose.yml (migrate, api, worker, beat pick their command there).
# Installed as a user would: the wheel alone, its runtime dependencies exactly as uv.lock pins them (hashes checked),
# no dev group, no source tree. The migrations, the pinned vendor roots and the dashboard's web/ ship inside the wheel.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY requirements/uv.txt requirements/uv.txt
RUN pip install --no-deps --only-binary=:all: --require-hashes -r requirements/uv.txt
COPY pyproject.toml uv.lock setup.py README.md ./
COPY verifier ./verifier
COPY migrations ./migrations
COPY vendor_roots ./vendor_roots
COPY web ./web
# The build group (setuptools) from the lock, so the wheel is built by the locked backend, not today's release.
RUN uv export --frozen --only-group build --no-emit-project -o /tmp/build.txt \
    && uv venv /opt/build && uv pip install --python /opt/build/bin/python --require-hashes -r /tmp/build.txt \
    && uv build --wheel --no-build-isolation --python /opt/build/bin/python --out-dir /wheels \
    && uv export --frozen --no-dev --no-emit-project -o /wheels/requirements.txt

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-deps --require-hashes -r /wheels/requirements.txt \
    && pip install --no-deps /wheels/keyward-*.whl && rm -rf /wheels \
    && useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin keyward
WORKDIR /app
# Everything installed belongs to root and stays read-only for the service user.
USER keyward:keyward
EXPOSE 8000
CMD ["uvicorn", "--factory", "verifier.app:create_server_app", "--host", "0.0.0.0", "--port", "8000"]
