"""One typed settings object, built from config.ini and overridden by the environment.

Every key of config.ini can be overridden by an environment variable named
``IMGAPI_<SECTION>__<KEY>`` (case-insensitive, two underscores between section and key), for
example ``IMGAPI_APP__SECRET_KEY``, ``IMGAPI_DATABASE__URL`` or, for a per-model section,
``IMGAPI_MODEL.DUMMY__MAX_BATCH_SIZE``. ``IMGAPI_CONFIG`` points at another config file.
Priority, highest first: explicit overrides, environment, config file, the defaults below.
Sections named ``model.<name>`` hold per-model batching settings; what they leave out comes
from MODEL_DEFAULTS, then from [inference].
"""

import configparser
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "IMGAPI_"
ENV_DELIMITER = "__"
CONFIG_ENV_VAR = "IMGAPI_CONFIG"
MODEL_SECTION_PREFIX = "model."
SECTIONS = ("database", "app", "server", "inference")

# Built-in [model.<name>] values: beneath those from a file, the environment or overrides,
# above [inference].
MODEL_DEFAULTS: dict[str, dict[str, object]] = {
    # ONNX Runtime gets 2 threads per batch; request threads decode images alongside.
    "efficientnet_lite0": {"max_batch_size": 8, "max_batch_delay_ms": 2, "intra_op_threads": 2},
    # The dummy model is instant: no need to wait for a batch to fill.
    "dummy": {"max_batch_delay_ms": 0},
}

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
    timeout_seconds: float = Field(default=3.0, gt=0)
    echo: bool = False


class AppSettings(_Section):
    secret_key: str = ""
    access_token_expire_minutes: int = Field(default=60, ge=1)
    upload_dir: str = "app/static/uploads"
    data_dir: str = "data"
    log_dir: str = "logs"
    max_upload_size: int = Field(default=10 * 1024 * 1024, ge=1)
    max_body_size: int = Field(default=64 * 1024, ge=1024)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    debug: bool = False
    log_level: LogLevel = "INFO"
    log_backup_days: int = Field(default=14, ge=1)
    log_max_bytes: int = Field(default=50 * 1024 * 1024, ge=0)
    login_max_attempts: int = Field(default=10, ge=1)
    login_max_attempts_per_client: int = Field(default=50, ge=1)
    login_window_seconds: int = Field(default=60, ge=1)
    malloc_arena_max: int = Field(default=2, ge=0)
    decode_memory_mb: int = Field(default=512, ge=16)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_head_bytes: int = Field(default=32 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=10)
    request_idle_timeout: float = Field(default=30.0, gt=0)
    keep_alive_timeout: int = Field(default=5, ge=1)
    max_connections: int = Field(default=500, ge=10)
    forwarded_allow_ips: str = ""


class ModelSettings(_Section):
    max_batch_size: int = Field(default=8, ge=1, le=1024)
    max_batch_delay_ms: float = Field(default=2.0, ge=0)
    queue_size: int = Field(default=256, ge=1)
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Threads a model's runtime may use inside one predict call; 0 lets the runtime choose.
    intra_op_threads: int = Field(default=0, ge=0, le=256)


class InferenceSettings(ModelSettings):
    default_model: str = "efficientnet_lite0"
    preload: bool = True
    cache_inputs: bool = True
    task_workers: int = Field(default=8, ge=1, le=256)
    max_pending_tasks: int = Field(default=2000, ge=1)
    max_task_attempts: int = Field(default=3, ge=1)
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    stuck_after_seconds: float = Field(default=300.0, ge=0)


def _with_inference(inference: InferenceSettings, own: Mapping[str, object]) -> ModelSettings:
    """One model's settings: its own values over those of [inference]."""
    inherited = inference.model_dump(include=set(ModelSettings.model_fields))
    return ModelSettings.model_validate({**inherited, **own})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, case_sensitive=False, frozen=True
    )

    base_dir: Path = PROJECT_ROOT
    database: DatabaseSettings = DatabaseSettings()
    app: AppSettings = AppSettings()
    server: ServerSettings = ServerSettings()
    inference: InferenceSettings = InferenceSettings()
    # Validated even when no source names a model, so that MODEL_DEFAULTS always apply.
    models: dict[str, ModelSettings] = Field(default={}, validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Settings(...) takes only what it is given; load_settings() picks the sources.
        return (init_settings,)

    @field_validator("models")
    @classmethod
    def _fill_in_models(
        cls, models: dict[str, ModelSettings], info: ValidationInfo
    ) -> dict[str, ModelSettings]:
        """What a [model.<name>] section leaves out comes from MODEL_DEFAULTS, then [inference]."""
        inference = info.data.get("inference")
        if not isinstance(inference, InferenceSettings):
            return models  # [inference] is invalid, and that error is reported
        own = {name: model.model_dump(exclude_unset=True) for name, model in models.items()}
        return {
            name: _with_inference(inference, {**MODEL_DEFAULTS.get(name, {}), **own.get(name, {})})
            for name in {**MODEL_DEFAULTS, **own}
        }

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
        return _with_inference(self.inference, {})


def _field_path(section: str, where: str) -> list[str]:
    """Where a config section lives in Settings: ["app"], or ["models", name] for model.<name>."""
    section = section.lower()
    if section in SECTIONS:
        return [section]
    if section.startswith(MODEL_SECTION_PREFIX):
        return ["models", section.removeprefix(MODEL_SECTION_PREFIX)]
    raise ConfigError(f"invalid setting in {where}: unknown section [{section}]")


class _SectionsSource(InitSettingsSource):
    """Values given as {section: {key: value}}, the shape of an INI file and of overrides."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        sections: Mapping[str, Mapping[str, object]],
        where: str,
    ) -> None:
        data: dict[str, Any] = {}
        for section, values in sections.items():
            target = data
            for part in _field_path(section, where):
                target = target.setdefault(part, {})
            target.update(values)
        super().__init__(settings_cls, init_kwargs=data)


class _IniSource(_SectionsSource):
    """The config file; it also sets base_dir, the folder its relative paths start from."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"))
        try:
            with path.open(encoding="utf-8") as handle:
                parser.read_file(handle)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except configparser.Error as exc:
            raise ConfigError(f"config file {path} is malformed: {exc.message}") from exc
        sections = {name: dict(parser[name]) for name in parser.sections()}
        super().__init__(settings_cls, sections, str(path))
        self.init_kwargs["base_dir"] = path.resolve().parent


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' IMGAPI_<SECTION>__<KEY> source, reading the given mapping.

    It matches variables to field names, so model.<name> sections are renamed models__<name>
    first. Variables without the delimiter (IMGAPI_CONFIG, ...) are not settings: skipped.
    An unknown section is an error, where the base class would silently ignore it.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.environ = environ  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str]:
        prefix = ENV_PREFIX.lower()
        found: dict[str, str] = {}
        for name, value in self.environ.items():
            name = name.lower()
            if name.startswith(prefix) and ENV_DELIMITER in name:
                section, _, key = name.removeprefix(prefix).partition(ENV_DELIMITER)
                path = _field_path(section, f"{ENV_PREFIX}* variables")
                found[prefix + ENV_DELIMITER.join([*path, key])] = value
        return found


def _describe(error: ValidationError, where: str) -> str:
    problems = []
    for item in error.errors():
        section, *key = (str(part) for part in item["loc"])
        if section == "models" and key:
            section = MODEL_SECTION_PREFIX + key.pop(0)
        problems.append(f"[{section}] {'.'.join(key).upper() or '?'}: {item['msg']}")
    return f"invalid setting in {where}: " + "; ".join(problems)


def load_settings(
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> Settings:
    """Settings from, highest priority first: overrides, environment, config file, defaults."""
    env = os.environ if env is None else env
    path = config_path or Path(env.get(CONFIG_ENV_VAR) or PROJECT_ROOT / "config.ini")
    sources = (
        _SectionsSource(Settings, overrides or {}, "overrides"),
        _EnvSource(Settings, env),
        _IniSource(Settings, path),
    )
    try:
        return Settings(_build_sources=(sources, {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, f"{path} or {ENV_PREFIX}* variables")) from exc
