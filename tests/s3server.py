"""A real S3-compatible server for tests: moto's server mode (the ``moto[server]`` package),
run as its own process on a test address. boto3 talks HTTP to it; nothing is mocked."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

ACCESS_KEY = "nasweb-test"
SECRET_KEY = "nasweb-test-secret"
REGION = "us-east-1"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self, log_path: Path, host: str = "127.0.0.1", bucket: str = "nasweb-test"):
        self.host, self.bucket = host, bucket
        self.port = _free_port(host)
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", host, "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex((host, self.port)) == 0:
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start: {Path(log_path).read_text()[-2000:]}")
            time.sleep(0.1)
        self.client().create_bucket(Bucket=bucket)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def storage_url(self, prefix: str = "nasweb") -> str:
        return f"s3://{self.bucket}/{prefix}?endpoint={self.endpoint}&region={REGION}"

    def env(self, prefix: str = "nasweb") -> dict:
        return {"STORAGE_URL": self.storage_url(prefix), "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}

    def client(self):
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
