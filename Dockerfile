# One image for the web server and every Celery worker (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that a code change does not reinstall torch.
COPY requirements.txt .
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 1000 nasweb \
    && mkdir -p /data/checkpoints /data/datasets /var/lock/nasweb /app/var \
    && chown -R nasweb /data /var/lock/nasweb /app/var
COPY --chown=nasweb . .

USER nasweb
ENV CHECKPOINT_DIR=/data/checkpoints \
    DATA_DIR=/data/datasets
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "nasweb.asgi:application"]
