# Tollgate: a metering gateway for AI APIs.
# Run it against an external Redis (recommended in production):
#   docker run -p 8080:8080 -e TOLLGATE_REDIS_URL=redis://redis:6379/0 \
#              -e TOLLGATE_ADMIN_TOKEN=... tollgate
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY pricing ./pricing
COPY config ./config
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 tollgate \
    && mkdir -p /data && chown tollgate /data

USER tollgate
EXPOSE 8080
VOLUME ["/data"]
CMD ["tollgate", "serve", "--config", "/app/config/gateway.yaml", "--host", "0.0.0.0", \
     "--port", "8080", "--data-dir", "/data"]
