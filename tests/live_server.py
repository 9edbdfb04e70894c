"""The real service (`python main.py`) in a subprocess on a free local port, for e2e tests."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx

from app.config import PROJECT_ROOT
from tests.conftest import PASSWORD, SECRET_KEY, SWEEP_INTERVAL_SECONDS, image_bytes

START_TIMEOUT_SECONDS = 60
# For servers whose tests do not care which model answers: the dummy one loads at once.
DUMMY_MODEL = {"IMGAPI_INFERENCE__DEFAULT_MODEL": "dummy"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LiveServer:
    """``python main.py`` with its database, folders and port set by IMGAPI_* variables.

    Tokens are signed with the suite's SECRET_KEY, and the periodic task sweep is hourly (see
    conftest), unless ``settings`` says otherwise.
    """

    def __init__(
        self, *, database_url: str, root: Path, settings: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.env = {
            **os.environ,
            "IMGAPI_DATABASE__URL": database_url,
            "IMGAPI_SERVER__PORT": str(self.port),
            "IMGAPI_APP__UPLOAD_DIR": str(root / "uploads"),
            "IMGAPI_APP__DATA_DIR": str(root / "data"),
            "IMGAPI_APP__LOG_DIR": str(root / "logs"),
            "IMGAPI_APP__SECRET_KEY": SECRET_KEY,
            "IMGAPI_INFERENCE__SWEEP_INTERVAL_SECONDS": SWEEP_INTERVAL_SECONDS,
            **(settings or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "app.log"

    @property
    def output_file(self) -> Path:
        """What the process printed (a start-up error, say)."""
        return self.root / f"server-{self.port}.out"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.output_file.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "main.py"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                printed = self.output_file.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"server exited with {self.process.returncode}; it printed:\n{printed}"
                )
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not become healthy in time")

    def kill(self) -> None:
        """Die like a crash: no shutdown handlers run."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, *, wait: bool = True) -> None:
        """Shut down as on Ctrl-C, and wait for the process to exit (killing it after 15 s).

        ``wait=False`` leaves the waiting to a thread, so that the next tests run meanwhile
        (exiting takes the interpreter about half a second); the test run ends after it.
        """
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        if wait:
            self._exit_or_kill()
        else:
            threading.Thread(target=self._exit_or_kill, name=f"stop-server-{self.port}").start()

    def _exit_or_kill(self) -> None:
        assert self.process is not None
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


@contextmanager
def live_server(
    *, database_url: str, root: Path, settings: dict[str, str] | None = None
) -> Iterator[LiveServer]:
    """A started server; on leaving, it is told to stop, and exits while the tests go on."""
    server = LiveServer(database_url=database_url, root=root, settings=settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(wait=False)


class Account:
    """A registered user of a live server, with one uploaded image."""

    def __init__(self, http: httpx.Client, name: str) -> None:
        http.post(
            "/users/", json={"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        )
        token = http.post("/users/token", data={"username": name, "password": PASSWORD}).json()[
            "access_token"
        ]
        self.http = http
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}
        upload = http.post(
            "/images/upload", headers=self.headers, files={"file": ("a.png", image_bytes())}
        )
        self.image_id: int = upload.json()["id"]

    def submit(self, **extra: Any) -> httpx.Response:
        return self.http.post(
            "/images/inference/async",
            headers=self.headers,
            json={"image_id": self.image_id, **extra},
        )

    def task(self, task_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(
            f"/images/inference/tasks/{task_id}", headers=self.headers
        ).json()
        return body
