"""Settings: config.ini, environment overrides, and clear errors for bad values."""

import subprocess
import sys
from pathlib import Path

import pytest

from app.application import create_app
from app.config import PROJECT_ROOT, ConfigError, load_settings
from app.utils.exceptions import StartupError

CONFIG = PROJECT_ROOT / "config.ini"


def test_defaults_use_embedded_sqlite() -> None:
    settings = load_settings(CONFIG, env={})
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'data' / 'app.db'}"
    assert settings.app.max_upload_size == 10 * 1024 * 1024
    assert settings.server.port == 8000
    assert settings.inference.default_model == "efficientnet_lite0"


def test_environment_overrides_any_key() -> None:
    env = {
        "IMGAPI_APP__LOG_LEVEL": "debug",
        "IMGAPI_SERVER__PORT": "9001",
        "IMGAPI_APP__MAX_UPLOAD_SIZE": "123",
        "UNRELATED": "x",
    }
    settings = load_settings(CONFIG, env=env)
    assert settings.app.log_level == "DEBUG"
    assert settings.server.port == 9001
    assert settings.app.max_upload_size == 123


def test_mysql_from_the_seed_keys_or_a_url() -> None:
    parts = load_settings(
        CONFIG,
        env={"IMGAPI_DATABASE__DB_HOST": "db.local", "IMGAPI_DATABASE__DB_PASSWORD": "p@ss:word"},
    )
    assert parts.database_url == (
        "mysql+pymysql://root:p%40ss%3Aword@db.local:3306/image_inference?charset=utf8mb4"
    )
    url = load_settings(
        CONFIG,
        env={"IMGAPI_DATABASE__URL": "mysql+pymysql://u@h/db", "IMGAPI_DATABASE__DB_HOST": "x"},
    )
    assert url.database_url == "mysql+pymysql://u@h/db"


def test_per_model_sections_override_batching() -> None:
    settings = load_settings(CONFIG, env={}, overrides={"model.other": {"max_batch_size": "32"}})
    assert settings.model_settings("other").max_batch_size == 32
    assert settings.model_settings("dummy").max_batch_delay_ms == 0
    assert settings.model_settings("unlisted").max_batch_size == settings.inference.max_batch_size


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IMGAPI_APP__LOG_LEVEL": "LOUD"}, "[app] LOG_LEVEL"),
        ({"IMGAPI_APP__MAX_UPLOAD_SIZE": "ten megabytes"}, "[app] MAX_UPLOAD_SIZE"),
        ({"IMGAPI_SERVER__PORT": "70000"}, "[server] PORT"),
        ({"IMGAPI_APP__NO_SUCH_KEY": "1"}, "[app] NO_SUCH_KEY"),
        ({"IMGAPI_NOSECTION__KEY": "1"}, "unknown section [nosection]"),
    ],
)
def test_bad_values_are_named_in_one_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=r".*") as error:
        load_settings(CONFIG, env=env)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.ini", env={})


def test_unreachable_database_stops_start_up(tmp_path: Path) -> None:
    settings = load_settings(
        CONFIG,
        env={},
        overrides={
            "database": {"url": "mysql+pymysql://root:secretpw@127.0.0.1:1/nothing"},
            "app": {
                "log_dir": str(tmp_path),
                "data_dir": str(tmp_path),
                "upload_dir": str(tmp_path),
            },
        },
    )
    with pytest.raises(StartupError) as error:
        create_app(settings)
    assert "cannot use the database at mysql+pymysql://root:***@127.0.0.1:1/nothing" in str(
        error.value
    )
    assert "secretpw" not in str(error.value)


def test_unknown_default_model_stops_start_up(tmp_path: Path) -> None:
    settings = load_settings(
        CONFIG,
        env={},
        overrides={"inference": {"default_model": "nope"}, "app": {"log_dir": str(tmp_path)}},
    )
    with pytest.raises(StartupError, match="DEFAULT_MODEL: unknown model 'nope'"):
        create_app(settings)


def test_main_prints_one_line_and_exits_on_bad_config(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "main.py"],
        cwd=PROJECT_ROOT,
        env={"IMGAPI_APP__LOG_LEVEL": "LOUD", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert completed.stderr.strip().startswith("error: invalid setting")
    assert "Traceback" not in completed.stderr
