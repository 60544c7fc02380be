# Keyward: one image for every service of docker-compose.yml (migrate, api, worker, beat pick their command there).
# The package is installed from a wheel; /app holds only what is read at run time: alembic.ini, migrations/ and
# the pinned vendor roots (KEYWARD_VENDOR_ROOTS_DIR points at them).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY verifier ./verifier
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEYWARD_VENDOR_ROOTS_DIR=/app/vendor_roots
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
    && useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin keyward
WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
COPY vendor_roots ./vendor_roots
# Everything above belongs to root and stays read-only for the service user.
USER keyward:keyward
EXPOSE 8000
CMD ["uvicorn", "--factory", "verifier.app:create_server_app", "--host", "0.0.0.0", "--port", "8000"]
