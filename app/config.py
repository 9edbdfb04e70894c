"""One typed settings object, built from config.ini and overridden by the environment.

Every key of config.ini can be overridden by an environment variable named
``IMGAPI_<SECTION>__<KEY>`` (upper case, two underscores between section and key), for
example ``IMGAPI_APP__SECRET_KEY`` or ``IMGAPI_DATABASE__URL``. ``IMGAPI_CONFIG`` points at
another config file. Sections named ``model.<name>`` hold per-model batching overrides.
"""

import configparser
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import quote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "IMGAPI_"
CONFIG_ENV_VAR = "IMGAPI_CONFIG"
MODEL_SECTION_PREFIX = "model."

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ConfigError(Exception):
    """A setting is missing, malformed or unusable; the message names it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = ""
    db_user: str = "root"
    db_password: str = ""
    db_host: str = ""
    db_port: int = Field(default=3306, ge=1, le=65535)
    db_name: str = "image_inference"
    sqlite_path: str = "data/app.db"
    pool_size: int = Field(default=10, ge=1)
    pool_recycle: int = Field(default=1800, ge=1)
    echo: bool = False


class AppSettings(_Section):
    secret_key: str = ""
    access_token_expire_minutes: int = Field(default=60, ge=1)
    upload_dir: str = "app/static/uploads"
    data_dir: str = "data"
    log_dir: str = "logs"
    max_upload_size: int = Field(default=10 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    debug: bool = False
    log_level: LogLevel = "INFO"
    log_backup_days: int = Field(default=14, ge=1)
    login_max_attempts: int = Field(default=10, ge=1)
    login_window_seconds: int = Field(default=60, ge=1)
    malloc_arena_max: int = Field(default=2, ge=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class ModelSettings(_Section):
    max_batch_size: int = Field(default=8, ge=1, le=1024)
    max_batch_delay_ms: float = Field(default=2.0, ge=0)
    queue_size: int = Field(default=256, ge=1)
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Threads a model's runtime may use inside one predict call; 0 lets the runtime choose.
    intra_op_threads: int = Field(default=0, ge=0, le=256)


class InferenceSettings(ModelSettings):
    default_model: str = "dummy"
    preload: bool = True
    cache_inputs: bool = True
    task_workers: int = Field(default=8, ge=1, le=256)
    max_pending_tasks: int = Field(default=2000, ge=1)
    max_task_attempts: int = Field(default=3, ge=1)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_dir: Path = PROJECT_ROOT
    database: DatabaseSettings = DatabaseSettings()
    app: AppSettings = AppSettings()
    server: ServerSettings = ServerSettings()
    inference: InferenceSettings = InferenceSettings()
    models: dict[str, ModelSettings] = {}

    def path(self, value: str) -> Path:
        """A configured path; relative ones are taken from the config file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def database_url(self) -> str:
        db = self.database
        if db.url:
            return db.url
        if db.db_host:
            user = quote_plus(db.db_user)
            password = f":{quote_plus(db.db_password)}" if db.db_password else ""
            return (
                f"mysql+pymysql://{user}{password}@{db.db_host}:{db.db_port}/"
                f"{db.db_name}?charset=utf8mb4"
            )
        return f"sqlite:///{self.path(db.sqlite_path)}"

    def model_settings(self, model_name: str) -> ModelSettings:
        """The knobs of one model: its own section, else the [inference] defaults."""
        if model_name in self.models:
            return self.models[model_name]
        fields = ModelSettings.model_fields
        return ModelSettings(**{name: getattr(self.inference, name) for name in fields})


_SECTIONS: dict[str, type[_Section]] = {
    "database": DatabaseSettings,
    "app": AppSettings,
    "server": ServerSettings,
    "inference": InferenceSettings,
}


def _read_ini(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except configparser.Error as exc:
        raise ConfigError(f"config file {path} is malformed: {exc.message}") from exc
    return {
        name.lower(): {k.lower(): v.strip() for k, v in parser[name].items()}
        for name in parser.sections()
    }


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    values: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        values.setdefault(section.lower(), {})[key.lower()] = value
    return values


def _describe(error: ValidationError, section: str, source: str) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "?"
        problems.append(f"[{section}] {key.upper()}: {item['msg']}")
    return f"invalid setting in {source}: " + "; ".join(problems)


def load_settings(
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> Settings:
    """Build the settings: config file, then environment, then explicit overrides."""
    env = os.environ if env is None else env
    path = config_path or Path(env.get(CONFIG_ENV_VAR) or PROJECT_ROOT / "config.ini")
    layers = [
        _read_ini(path),
        _env_overrides(env),
        {k: dict(v) for k, v in (overrides or {}).items()},
    ]
    merged: dict[str, dict[str, str]] = {}
    for layer in layers:
        for section, values in layer.items():
            merged.setdefault(section, {}).update(values)

    sections: dict[str, object] = {}
    models: dict[str, ModelSettings] = {}
    for section, values in merged.items():
        try:
            if section in _SECTIONS:
                sections[section] = _SECTIONS[section].model_validate(values)
            elif section.startswith(MODEL_SECTION_PREFIX):
                model_name = section[len(MODEL_SECTION_PREFIX) :]
                defaults = sections.get("inference") or InferenceSettings.model_validate(
                    merged.get("inference", {})
                )
                base = {name: getattr(defaults, name) for name in ModelSettings.model_fields}
                models[model_name] = ModelSettings.model_validate({**base, **values})
            else:
                raise ConfigError(f"unknown section [{section}] in {path}")
        except ValidationError as exc:
            raise ConfigError(_describe(exc, section, f"{path} or IMGAPI_* variables")) from exc
    return Settings(base_dir=path.resolve().parent, models=models, **sections)
