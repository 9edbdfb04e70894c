"""The README's examples, run verbatim (bash, curl, jq) against a live server."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT
from tests.live_server import live_server

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
    assert (workdir / "downloaded.jpg").read_bytes() == (
        PROJECT_ROOT / "tests/data/chelsea.jpg"
    ).read_bytes()
    assert "204 No Content" in output
