"""An S3-compatible server on the test bed: SeaweedFS (`weed server -s3`), built by scripts/setup.sh.

It runs in one host's network namespace (so it listens on an address of the bed, as a team's object
store listens on its own machine), with its data in a scratch folder; `stop` ends it and the folder goes
with the test's temporary directory. The tests read what the bucket holds through the filer's HTTP API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from toolchain.testbed.model import TestBed

PROJECT_DIR = Path(__file__).resolve().parents[2]
WEED = PROJECT_DIR / ".cache" / "bin" / "weed"
S3_PORT, FILER_PORT, MASTER_PORT, VOLUME_PORT = 8333, 8888, 9333, 8380
START_TIMEOUT = 90.0


def _request(method: str, url: str, timeout: float = 10) -> bytes:
    request = urllib.request.Request(url, method=method, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.read()


@dataclass
class S3Server:
    bed: TestBed
    host: str
    data_dir: Path
    bucket: str = "secure-postfix"
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return self.bed.hosts[self.host].address

    def backend_url(self) -> str:
        """The `PULUMI_BACKEND_URL` of the bucket (the CLI's diy S3 backend, path-style, plain HTTP)."""
        endpoint = f"http://{self.address}:{S3_PORT}"
        options = "region=us-east-1&use_path_style=true&disable_https=true&request_checksum_calculation=when_required"
        return f"s3://{self.bucket}?endpoint={endpoint}&{options}"

    @staticmethod
    def credentials() -> dict[str, str]:
        """The server runs without identities; the CLI's S3 client still signs, with any key."""
        return {"AWS_ACCESS_KEY_ID": "bed", "AWS_SECRET_ACCESS_KEY": "bed-secret", "AWS_REGION": "us-east-1"}

    def start(self) -> None:
        if not WEED.exists():
            raise RuntimeError(f"{WEED} is missing: run scripts/setup.sh")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pid = self.bed.hosts[self.host].pid
        command = [
            "nsenter", "-t", str(pid), "-n", "--",
            str(WEED), "server",
            f"-dir={self.data_dir}", f"-ip={self.address}", f"-ip.bind={self.address}",
            f"-master.port={MASTER_PORT}", "-master.volumeSizeLimitMB=64",
            f"-volume.port={VOLUME_PORT}", "-volume.max=20",
            "-filer", f"-filer.port={FILER_PORT}",
            "-s3", f"-s3.port={S3_PORT}",
        ]  # fmt: skip
        log = open(self.data_dir / "weed.log", "ab")  # noqa: SIM115 (kept open for the server's lifetime)
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=self.data_dir
        )
        log.close()
        self._wait_and_create_bucket()

    def _wait_and_create_bucket(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited ({self.process.returncode}): {self.log_tail()}")
            try:
                _request("PUT", f"http://{self.address}:{S3_PORT}/{self.bucket}")
                return
            except urllib.error.HTTPError as exc:
                if exc.code == 409:  # already there
                    return
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise RuntimeError(f"SeaweedFS did not answer on {self.address}:{S3_PORT} in {START_TIMEOUT:.0f} s: {last}")

    def log_tail(self) -> str:
        path = self.data_dir / "weed.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def objects(self, prefix: str = "") -> list[str]:
        """Every object of the bucket under `prefix`, as filer paths."""
        found: list[str] = []
        pending = [f"/buckets/{self.bucket}/{prefix}".rstrip("/") + "/"]
        while pending:
            folder = pending.pop()
            listing = json.loads(_request("GET", f"http://{self.address}:{FILER_PORT}{folder}?limit=10000") or b"{}")
            for entry in listing.get("Entries") or []:
                path = entry["FullPath"]
                if entry.get("Mode", 0) & 0x80000000:  # os.ModeDir
                    pending.append(path + "/")
                else:
                    found.append(path)
        return sorted(found)

    def read(self, path: str) -> bytes:
        return _request("GET", f"http://{self.address}:{FILER_PORT}{path}")

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
        self.process = None
