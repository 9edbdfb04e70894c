"""The README's examples, run verbatim (bash, curl, jq, websockets) against a live server;
the same flow from a program, with request ids and a log that keeps no secrets."""

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx2 as httpx
import pytest

from app.config import PROJECT_ROOT
from tests.conftest import PASSWORD, eventually, image_bytes
from tests.live_server import Account, LiveServer, live_server

pytestmark = pytest.mark.live

README = PROJECT_ROOT / "README.md"


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The service as the README starts it: its default model is EfficientNet-Lite0."""
    with live_server(database_url=database_url, root=tmp_path_factory.mktemp("readme")) as running:
        yield running


def readme_examples(section: str) -> str:
    """The bash blocks of one `## ` section of the README, in order."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL))


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_readme_examples_work_verbatim(server: LiveServer, tmp_path: Path) -> None:
    workdir = tmp_path / "user"
    (workdir / "tests").mkdir(parents=True)
    (workdir / "tests" / "data").symlink_to(PROJECT_ROOT / "tests" / "data")
    script = readme_examples("Examples").replace("localhost:8000", f"127.0.0.1:{server.port}")
    completed = subprocess.run(
        ["bash", "-e", "-c", script], cwd=workdir, capture_output=True, text=True, timeout=120
    )
    output = completed.stdout
    assert completed.returncode == 0, completed.stderr
    assert '"username":"testuser"' in output
    assert re.search(r"Access Token: \S+\.\S+\.\S+", output)
    assert re.search(r"Image ID: \d+", output)
    assert '"format":"JPEG"' in output
    assert "X-Total-Count: 1" in output.replace("x-total-count", "X-Total-Count")
    assert '"model_name":"dummy"' in output
    assert re.search(
        r'"model_name":"efficientnet_lite0".*"label":"(Egyptian cat|tiger cat|tabby)', output
    )
    assert (workdir / "downloaded.jpg").read_bytes() == (
        PROJECT_ROOT / "tests/data/chelsea.jpg"
    ).read_bytes()
    assert re.search(
        r"Task Status URL: http://127.0.0.1:\d+/images/inference/tasks/[0-9a-f-]{36}", output
    )
    assert '"status":"completed"' in output
    assert "204 No Content" in output


def test_the_readme_flow_with_request_ids_and_a_clean_log(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url) as http:
        registered = http.post(
            "/users/",
            json={"username": "readme_user", "email": "readme@example.com", "password": PASSWORD},
        )
        assert registered.status_code == 201
        login = http.post("/users/token", data={"username": "readme_user", "password": PASSWORD})
        token = login.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "readme-flow-1"}
        image = http.post(
            "/images/upload", headers=headers, files={"file": ("image.jpg", image_bytes("JPEG"))}
        )
        assert image.status_code == 201
        assert image.headers["X-Request-ID"] == "readme-flow-1"
        result = http.post(
            "/images/inference", headers=headers, json={"image_id": image.json()["id"]}
        )
        assert result.status_code == 200
        assert http.get("/docs").status_code == 200
        assert "/images/inference" in http.get("/openapi.json").json()["paths"]

    # A request's line is written once its answer is out: wait for it.
    line = "[readme-flow-1] app.requests: POST /images/upload 201"
    eventually(lambda: line in server.log_file.read_text())
    log = server.log_file.read_text()
    assert PASSWORD not in log
    assert token not in log


def test_readme_websocket_example_receives_updates(server: LiveServer, tmp_path: Path) -> None:
    block = next(
        line
        for line in readme_examples("Live updates over WebSocket").splitlines()
        if "-m websockets" in line
    )
    workdir = tmp_path / "user"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(Path(sys.prefix))
    with httpx.Client(base_url=server.base_url) as http:
        owner = Account(http, "readme_ws_user")
        # A person at the terminal: waits for the greeting, submits a task elsewhere, watches it
        # complete, types "ping", then ends the input (Ctrl-D).
        listener = subprocess.Popen(
            block.replace("localhost:8000", f"127.0.0.1:{server.port}"),
            shell=True,
            cwd=workdir,
            env={**os.environ, "TOKEN": owner.token},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert listener.stdin is not None and listener.stdout is not None
        screen = Screen(listener.stdout)
        try:
            screen.wait_for('"type":"connected"')
            task_id = owner.submit().json()["task_id"]
            screen.wait_for(f'"task_id":"{task_id}","status":"completed"')
            listener.stdin.write("ping\n")
            listener.stdin.flush()
            screen.wait_for("pong")
            listener.stdin.close()
            assert listener.wait(timeout=10) == 0, screen.text()
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()


class Screen:
    """What a command prints, read as it comes, so that a test can wait for a line."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, expected: str, timeout: float = 20) -> None:
        with self._changed:
            shown = self._changed.wait_for(lambda: expected in "".join(self._lines), timeout)
        assert shown, f"{expected!r} not shown within {timeout} s; the screen: {self.text()!r}"
