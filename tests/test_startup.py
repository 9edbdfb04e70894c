"""`python main.py` that cannot start says why in one line and exits, whatever stops it."""

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT

pytestmark = pytest.mark.live  # runs main.py

# main.py run as `python main.py` would, after the shipped model file's checksum is made wrong.
TAMPERED_MAIN = (
    "import runpy, app.models.efficientnet_model as m; m.ONNX_SHA256 = '0' * 64; "
    "runpy.run_path('main.py', run_name='__main__')"
)


def test_a_model_that_cannot_load_stops_start_up_in_one_line(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", TAMPERED_MAIN],
        cwd=PROJECT_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "IMGAPI_DATABASE__URL": f"sqlite:///{tmp_path / 'app.db'}",
            "IMGAPI_APP__DATA_DIR": str(tmp_path),
            "IMGAPI_APP__LOG_DIR": str(tmp_path),
            "IMGAPI_APP__UPLOAD_DIR": str(tmp_path / "uploads"),
            "IMGAPI_SERVER__PORT": "1",  # never bound: start-up fails first
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    assert "error: cannot start: model 'efficientnet_lite0' cannot be loaded" in completed.stderr
    assert "expected 0000" in completed.stderr  # the reason, in the log line before it
