"""Training workers on two other "hosts" (network namespaces with empty working directories)
reach one Postgres, one Redis and one S3-compatible bucket over the network; the web serves
checkpoints they wrote without any shared disk. Then one host is cut off mid-candidate: the
reaper gives its candidate to the other host and the search still ends with exactly its
budget, every epoch once.

Everything here is private to the test: its own Postgres, redis-server and moto S3 server,
bound to loopback and the bridge address the test creates; the shared ones are untouched.
Needs root (``ip netns``); elsewhere it fails with one line saying why.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from netns import HostNetwork, netns_unavailable
from processes import ROOT, PrivatePostgres, ServiceProcess, _redis_server_bin, _server_bin, free_port
from s3server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.timeout(900)]

HOSTS = ("a", "b")
HEARTBEAT_TIMEOUT = 6
EPOCHS = 30  # of a candidate in the second search: long enough to be caught in the middle


class NetworkPostgres(PrivatePostgres):
    """A private cluster that also listens on the test bridge's address."""

    listen = "127.0.0.1"
    clients = ""  # the hosts' network, trusted like loopback

    def start(self):
        hba = self.data / "pg_hba.conf"
        if hba.exists() and "nasweb-test-hosts" not in hba.read_text():
            with open(hba, "a") as f:
                f.write(f"host all all {self.clients} trust  # nasweb-test-hosts\n")
        self._as_owner([_server_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-o",
                        f"-p {self.port} -k {self.base} -c listen_addresses={self.listen} -c fsync=off "
                        f"-c max_connections=200", "start"])


def start_postgres(net: HostNetwork) -> NetworkPostgres:
    NetworkPostgres.listen = f"127.0.0.1,{net.service_ip}"
    NetworkPostgres.clients = f"{net.subnet}.0/24"
    return NetworkPostgres()


class Stack:
    """The private services, the web, the control worker and one training worker per host."""

    def __init__(self, tmp_path, net: HostNetwork):
        self.tmp, self.net, self.procs, self.hosts = tmp_path, net, [], {}
        ip_ = net.service_ip
        self.pg = start_postgres(net)
        self.redis_port = free_port()
        self.procs.append(ServiceProcess(
            [_redis_server_bin(), "--port", str(self.redis_port), "--bind", "127.0.0.1", ip_, "--protected-mode", "no",
             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)], os.environ.copy(), tmp_path / "redis.log"))
        self.procs[-1].wait_for_port(self.redis_port, timeout=20)
        self.s3 = S3Server(tmp_path / "moto.log", host=ip_)

    def env(self, workdir, where: str) -> dict:
        host = "127.0.0.1" if where == "main" else self.net.service_ip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TEST_", "PYTEST"))}
        env.update({
            **self.s3.env(), "DJANGO_SETTINGS_MODULE": "nasweb.settings", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": f"postgres://root@{host}:{self.pg.port}/nasweb",
            "REDIS_URL": f"redis://{host}:{self.redis_port}/0", "CHANNEL_PREFIX": "nasweb-multihost",
            "CHECKPOINT_DIR": str(workdir / "checkpoints"), "DATA_DIR": str(workdir / "data"),
            "STATIC_ROOT": str(workdir / "static"), "HEARTBEAT_SECONDS": "1",
            "HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT), "OMP_NUM_THREADS": "1", "LOG_LEVEL": "INFO",
        })
        return env

    def django(self, code: str) -> str:
        script = "import django; django.setup()\n" + code
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=self.env(self.tmp / "main", "main"),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def start(self):
        main = self.tmp / "main"
        main.mkdir()
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env(main, "main"),
                       check=True, timeout=300)
        self.web_port = free_port()
        self._spawn([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.web_port),
                     "nasweb.asgi:application"], main, "main", "web").wait_for_port(self.web_port)
        self._spawn(_celery("control", "control@main", "threads", "-B", "--schedule", str(main / "beat")),
                    main, "main", "control").wait_for_output("ready.", 120)
        for host in HOSTS:
            workdir = self.tmp / f"host-{host}"
            workdir.mkdir()  # empty: no code, no data, no checkpoints
            args = self.net.exec_args(host, ["env", "-C", str(workdir), *_celery("gpu", f"gpu@host-{host}", "solo")])
            self.hosts[host] = self._spawn(args, workdir, host, f"host-{host}")
        for proc in self.hosts.values():
            proc.wait_for_output("ready.", 180)

    def _spawn(self, args, workdir, where, name) -> ServiceProcess:
        proc = ServiceProcess(args, self.env(workdir, where), self.tmp / f"{name}.log")
        self.procs.append(proc)
        return proc

    def sql(self, query: str):
        return self.pg.run_sql("nasweb", query)

    def stop(self):
        for proc in reversed(self.procs):
            proc.stop()
        self.s3.stop()
        self.pg.destroy()


def _celery(queue, name, pool, *extra):
    return [sys.executable, "-m", "celery", "-A", "nasweb", "worker", "-Q", queue, "-n", name, f"--pool={pool}",
            "--concurrency=1" if pool == "solo" else "--concurrency=2", "--without-gossip", "--without-mingle",
            "--loglevel=INFO", *extra]


@pytest.fixture
def stack(tmp_path):
    why = netns_unavailable()
    if why:
        pytest.fail(f"workers on other hosts cannot be tested here: {why}", pytrace=False)
    net = HostNetwork(list(HOSTS))
    stack = None
    try:
        stack = Stack(tmp_path, net)
        for host in HOSTS:  # the hosts reach the services over the bridge
            assert net.reachable(host, stack.pg.port) and net.reachable(host, stack.s3.port)
        stack.start()
        yield stack
    finally:
        if stack is not None:
            stack.stop()
        net.destroy()


def create_search(stack, name, max_candidates, epochs, parallel) -> int:
    return int(stack.django(
        "from django.contrib.auth.models import User\nfrom searches import services\n"
        f"owner = User.objects.get(username='multi')\n"
        f"s = services.search_create(owner=owner, name='{name}', dataset='digits', space='chain', strategy='random',"
        f" max_candidates={max_candidates}, epochs={epochs}, parallel={parallel}, seed=7)\nprint(s.id)").split()[-1])


def wait_for_end(stack, search_id, timeout=600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = stack.sql(f"SELECT state FROM searches_search WHERE id = {search_id}")[0][0]
        if state in ("finished", "failed", "cancelled"):
            return state
        time.sleep(0.5)
    raise TimeoutError(f"search {search_id} still {state} after {timeout}s")


def assert_every_epoch_once(stack, search_id, budget, epochs):
    rows = stack.sql(f"SELECT id, state, worker, checkpoint_path FROM searches_candidate "
                     f"WHERE search_id = {search_id} ORDER BY index")
    assert len(rows) == budget, rows
    for cid, state, worker, ref in rows:
        assert state == "finished", (cid, state)
        got = [e for (e,) in stack.sql(f"SELECT epoch FROM searches_epochmetric WHERE candidate_id = {cid} "
                                       f"ORDER BY epoch")]
        assert got == list(range(1, epochs + 1)), (cid, worker, got)
        assert ref.startswith("storage:checkpoints/"), ref
    seqs = [s for (s,) in stack.sql(f"SELECT seq FROM searches_epochmetric WHERE search_id = {search_id}")]
    assert len(seqs) == len(set(seqs)) == budget * epochs
    return rows


def download(stack, token, search_id, cid) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.web_port}/api/searches/{search_id}/candidates/{cid}/checkpoint/",
        headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - the test's own server
        return response.read()


def test_workers_on_two_hosts_share_nothing_but_the_network_and_survive_losing_one(stack, tmp_path):
    started = time.monotonic()
    token = stack.django(
        "from django.contrib.auth.models import User\nfrom searches import services\n"
        "owner = User.objects.create_user('multi', password='x' * 12)\n"
        "print(services.api_token_create(owner=owner, name='t')[1])").split()[-1]

    # 1. Both hosts train; the web serves what they put in the bucket.
    first = create_search(stack, "two-hosts", max_candidates=4, epochs=3, parallel=2)
    assert wait_for_end(stack, first) == "finished"
    rows = assert_every_epoch_once(stack, first, budget=4, epochs=3)
    assert {worker for _, _, worker, _ in rows} == {"gpu@host-a", "gpu@host-b"}
    for cid, _, worker, ref in rows:
        body = download(stack, token, first, cid)
        digest = stack.sql(f"SELECT checkpoint_sha256 FROM searches_candidate WHERE id = {cid}")[0][0]
        assert hashlib.sha256(body).hexdigest() == digest, (cid, worker)
        assert f"nasweb/{ref.removeprefix('storage:')}" in stack.s3.keys("nasweb/checkpoints/")
    for host in HOSTS:  # nothing of the checkpoints stayed on a host's own disk
        assert not list((tmp_path / f"host-{host}").rglob("*.pt"))

    # 2. Host a goes dark in the middle of a candidate.
    second = create_search(stack, "lose-a-host", max_candidates=4, epochs=EPOCHS, parallel=2)
    deadline = time.monotonic() + 300
    while True:
        busy = stack.sql(f"SELECT id, epochs_done FROM searches_candidate WHERE search_id = {second} AND state = "
                         f"'running' AND worker = 'gpu@host-a' AND epochs_done BETWEEN 1 AND {EPOCHS - 5}")
        if busy:
            break
        state = stack.sql(f"SELECT state FROM searches_search WHERE id = {second}")[0][0]
        assert state not in ("finished", "failed") and time.monotonic() < deadline, \
            "host a never was in the middle of a candidate of the second search"
        time.sleep(0.05)
    lost_id = busy[0][0]
    stack.net.cut("a")
    stack.net.kill_all("a")
    assert wait_for_end(stack, second) == "finished"
    rows = assert_every_epoch_once(stack, second, budget=4, epochs=EPOCHS)
    assert dict((cid, worker) for cid, _, worker, _ in rows)[lost_id] == "gpu@host-b"
    assert "train_candidate[" in stack.hosts["a"].output()
    control_log = (tmp_path / "control.log").read_text()
    assert re.search(rf"'requeued': \[[^\]]*\b{lost_id}\b", control_log), "the reaper did not hand it back"
    body = download(stack, token, second, lost_id)
    assert hashlib.sha256(body).hexdigest() == stack.sql(
        f"SELECT checkpoint_sha256 FROM searches_candidate WHERE id = {lost_id}")[0][0]
    print(json.dumps({"multi_host_test_seconds": round(time.monotonic() - started, 1),
                      "lost_candidate": lost_id}))
