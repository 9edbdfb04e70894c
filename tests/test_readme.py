"""The README's examples, run verbatim (bash, curl, jq) against a live server."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from app.config import PROJECT_ROOT
from tests.live_server import Account, live_server

README = PROJECT_ROOT / "README.md"


def readme_examples(section: str) -> str:
    """The bash blocks of one `## ` section of the README, in order."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL))


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_readme_examples_work_verbatim(database_url: str, tmp_path: Path) -> None:
    workdir = tmp_path / "user"
    (workdir / "tests").mkdir(parents=True)
    (workdir / "tests" / "data").symlink_to(PROJECT_ROOT / "tests" / "data")
    with live_server(database_url=database_url, root=tmp_path / "server") as server:
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


def test_readme_websocket_example_receives_updates(database_url: str, tmp_path: Path) -> None:
    block = next(
        line
        for line in readme_examples("Live updates over WebSocket").splitlines()
        if "-m websockets" in line
    )
    workdir = tmp_path / "user"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(Path(sys.prefix))
    with live_server(database_url=database_url, root=tmp_path / "server") as server:
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base) as http:
            owner = Account(http, "readme_ws_user")
            command = block.replace("localhost:8000", f"127.0.0.1:{server.port}")
            # Stands in for a person: waits, types "ping", waits, then closes the input.
            listener = subprocess.Popen(
                f"(sleep 2; echo ping; sleep 3) | {command}",
                shell=True,
                cwd=workdir,
                env={**os.environ, "TOKEN": owner.token},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            time.sleep(1.5)
            task_id = owner.submit().json()["task_id"]
            output, _ = listener.communicate(timeout=30)
    assert '"type":"connected"' in output
    assert f'"task_id":"{task_id}","status":"completed"' in output
    assert "pong" in output
