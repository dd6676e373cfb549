"""Gunicorn serving the ASGI application from several processes (``make demo``, compose).

    gunicorn -c nasweb/gunicorn_conf.py -b 127.0.0.1:8000 nasweb.asgi:application

Each process is a uvicorn worker (HTTP and websockets); Django runs sync views on one
thread per process, so several processes let a slow request (a large search's data)
stall only its own process. Websockets of one search may land on different processes:
events reach them all through the channel layer (Redis). ``WEB_CONCURRENCY`` sets the
number of processes (default: the CPU count, 2 to 4); each holds Django and torch
(~0.5 GB).
"""
import os

worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY") or min(4, max(2, os.cpu_count() or 1)))
graceful_timeout = 10
timeout = 120  # a worker silent this long (a view stuck in C code) is restarted
keepalive = 5
accesslog = None
