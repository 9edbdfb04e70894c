"""Settings: config.ini, environment overrides, and clear errors for bad values."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.application import create_app
from app.config import (
    MODEL_DEFAULTS,
    PROJECT_ROOT,
    SECTIONS,
    ConfigError,
    Settings,
    load_settings,
)
from app.utils.exceptions import StartupError

CONFIG = PROJECT_ROOT / "config.ini"
# A commented-out setting in config.ini: "# KEY = value".
SETTING_LINE = re.compile(r"^# ?([A-Z][A-Z0-9_]*) =(.*)$")


def test_defaults_use_embedded_sqlite() -> None:
    settings = load_settings(CONFIG, env={})
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'data' / 'app.db'}"
    assert settings.app.max_upload_size == 10 * 1024 * 1024
    assert settings.server.port == 8000
    assert settings.inference.default_model == "efficientnet_lite0"
    assert settings.app.max_body_size == 64 * 1024
    assert settings.base_dir == PROJECT_ROOT


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
        ({"IMGAPI_APP__MAX_BODY_SIZE": "512"}, "[app] MAX_BODY_SIZE"),
        ({"IMGAPI_MODEL.DUMMY__MAX_BATCH_SIZE": "0"}, "[model.dummy] MAX_BATCH_SIZE"),
        ({"IMGAPI_SERVER__PORT": "70000"}, "[server] PORT"),
        ({"IMGAPI_APP__NO_SUCH_KEY": "1"}, "[app] NO_SUCH_KEY"),
        ({"IMGAPI_NOSECTION__KEY": "1"}, "unknown section [nosection]"),
    ],
)
def test_bad_values_are_named_in_one_message(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid setting in ") as error:
        load_settings(CONFIG, env=env)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_or_malformed_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.ini", env={})
    malformed = tmp_path / "malformed.ini"
    malformed.write_text("KEY = value outside any section\n")
    with pytest.raises(ConfigError, match=r"config file .* is malformed"):
        load_settings(malformed, env={})


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


@pytest.mark.live
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


def test_model_sections_from_the_environment() -> None:
    env = {
        "IMGAPI_MODEL.DUMMY__MAX_BATCH_SIZE": "64",
        "imgapi_model.other__queue_size": "5",
        "IMGAPI_INFERENCE__TIMEOUT_SECONDS": "9",
    }
    settings = load_settings(CONFIG, env=env)
    dummy = settings.model_settings("dummy")
    assert dummy.max_batch_size == 64
    assert dummy.max_batch_delay_ms == 0  # its code default still applies
    assert dummy.timeout_seconds == 9  # inherited from [inference] after the environment
    assert settings.model_settings("other").queue_size == 5
    assert settings.model_settings("efficientnet_lite0").intra_op_threads == 2


def test_overrides_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    ini = tmp_path / "other.ini"
    ini.write_text(
        "[app]\nLOG_BACKUP_DAYS = 3\nLOGIN_MAX_ATTEMPTS = 3\nLOGIN_WINDOW_SECONDS = 3 # why\n"
        "UPLOAD_DIR = up\n[model.dummy]\nQUEUE_SIZE = 3\n"
    )
    env = {
        "IMGAPI_CONFIG": str(ini),  # names the file; not itself a setting
        "IMGAPI_TEST_MYSQL_URL": "ignored: no section",
        "IMGAPI_APP__LOGIN_MAX_ATTEMPTS": "2",
        "IMGAPI_APP__LOGIN_WINDOW_SECONDS": "2",
        "IMGAPI_MODEL.DUMMY__QUEUE_SIZE": "2",
    }
    overrides = {"app": {"login_window_seconds": "1"}, "model.dummy": {"queue_size": "1"}}
    settings = load_settings(env=env, overrides=overrides)
    assert settings.app.access_token_expire_minutes == 60  # default
    assert settings.app.log_backup_days == 3  # file
    assert settings.app.login_max_attempts == 2  # environment
    assert settings.app.login_window_seconds == 1  # override
    assert settings.model_settings("dummy").queue_size == 1
    assert settings.base_dir == tmp_path
    assert settings.path(settings.app.upload_dir) == tmp_path / "up"


def test_max_body_size_can_be_set() -> None:
    assert load_settings(CONFIG, env={}).app.max_body_size == 65536
    env = {"IMGAPI_APP__MAX_BODY_SIZE": "2048"}
    assert load_settings(CONFIG, env=env).app.max_body_size == 2048
    overrides = {"app": {"max_body_size": "4096"}}
    assert load_settings(CONFIG, env=env, overrides=overrides).app.max_body_size == 4096


def test_settings_are_frozen() -> None:
    settings = load_settings(CONFIG, env={})
    for section, key in [(settings, "app"), (settings.app, "debug")]:
        with pytest.raises(ValidationError, match="frozen"):
            setattr(section, key, None)


def test_config_ini_shows_exactly_the_defaults(tmp_path: Path) -> None:
    """Uncommenting every setting that config.ini documents must change nothing."""
    documented: dict[str, set[str]] = {}
    lines: list[str] = []
    section: str | None = None
    for line in CONFIG.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
            documented[section] = set()
        if section is not None and (match := SETTING_LINE.match(line)):
            documented[section].add(match[1].lower())
            line = f"{match[1]} ={match[2]}"
        lines.append(line)
    uncommented = tmp_path / "config.ini"
    uncommented.write_text("\n".join(lines), encoding="utf-8")

    defaults = load_settings(CONFIG, env={})
    assert defaults == Settings()  # as shipped, the file changes nothing
    assert load_settings(uncommented, env={}) == defaults.model_copy(update={"base_dir": tmp_path})
    # ... and it documents every key, the per-model defaults included.
    for name in SECTIONS:
        assert documented[name] == set(type(getattr(defaults, name)).model_fields), name
    for model, values in MODEL_DEFAULTS.items():
        assert documented[f"model.{model}"] == set(values), model
