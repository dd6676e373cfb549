"""The web tier as make demo and compose start it: gunicorn with several uvicorn processes.
A search's pages connected to different processes all get its events (the channel layer
carries them between processes), and every process serves pages."""
import contextlib
import json
import os
import sys
import time
import urllib.request

import pytest
from django.conf import settings
from django.test import Client
from processes import ServiceProcess, free_port, process_env
from websockets.sync.client import connect

from searches import services

pytestmark = pytest.mark.django_db(transaction=True)


def gunicorn(port, env, log_path, processes=2):
    # The command line of scripts/demo.sh and docker-compose.yml, with the port and count set.
    return ServiceProcess([sys.executable, "-m", "gunicorn", "-c", "nasweb/gunicorn_conf.py",
                           "-b", f"127.0.0.1:{port}", "nasweb.asgi:application"],
                          dict(env, WEB_CONCURRENCY=str(processes)), log_path)


def server_pid_of(client_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of the TCP connection from ``client_port``."""
    inode = None
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def worker_pids(master_pid: int) -> list[int]:
    children = open(f"/proc/{master_pid}/task/{master_pid}/children").read().split()
    return [int(p) for p in children]


def test_pages_on_different_processes_all_get_the_search_events(alice, tmp_path, checkpoint_dir):
    search = services.search_create(owner=alice, name="two processes", dataset="digits", space="chain",
                                    strategy="random", max_candidates=1, epochs=5, parallel=1, seed=1)
    [cid] = services.search_advance(search.id)
    candidate = services.candidate_claim(cid, worker="test-writer", device="cpu")
    client = Client()
    client.force_login(alice)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    port = free_port()
    server = gunicorn(port, process_env(checkpoint_dir), tmp_path / "gunicorn.log")
    sockets, stack = [], contextlib.ExitStack()
    try:
        server.wait_for_port(port)
        deadline = time.monotonic() + 60
        while len(worker_pids(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = worker_pids(server.proc.pid)
        assert len(pids) == 2, f"gunicorn started {len(pids)} processes, not 2"
        owners = {}
        # Connect until pages sit on both processes (the kernel hands each connection to one).
        while len(set(owners.values())) < 2 and len(sockets) < 40:
            ws = stack.enter_context(connect(f"ws://127.0.0.1:{port}/ws/searches/{search.id}/",
                                             origin=f"http://127.0.0.1:{port}",
                                             additional_headers={"Cookie": cookie}, open_timeout=30))
            snapshot = json.loads(ws.recv(timeout=30))
            assert snapshot["type"] == "snapshot"
            sockets.append(ws)
            owners[ws] = server_pid_of(ws.socket.getsockname()[1], port, pids)
        assert set(owners.values()) == set(pids), f"pages on {set(owners.values())}, processes {pids}"

        assert services.epoch_record(candidate, epoch=1, train_loss=1.0, train_accuracy=0.5, val_loss=1.0,
                                     val_accuracy=0.5, seconds=0.1)
        for ws in sockets:
            while True:
                event = json.loads(ws.recv(timeout=30))
                if event["type"] == "epoch":
                    break
            assert (event["candidate"], event["epoch"]) == (candidate.id, 1), owners[ws]

        # Plain pages are served too, whichever process takes them.
        for _ in range(4):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=30) as page:
                assert page.status == 200
    finally:
        stack.close()
        server.stop()
