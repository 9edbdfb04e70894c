"""Logging: console plus logs/app.log rotated at midnight, every line tagged with a request id."""

import logging
import re
import sys
from contextvars import ContextVar
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
LOG_FILE_NAME = "app.log"
# Tokens can reach a log line through a WebSocket URL (?token=) or a copied header.
_SECRET_PATTERNS = (
    # A WebSocket's whole query string: its token may be spelled in percent-encoding.
    (re.compile(r"(/ws/[^\s?\"']*)\?[^\s\"']*"), r"\1?[redacted]"),
    (re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE), r"\1[redacted]"),
    (re.compile(r"(bearer\s+)[A-Za-z0-9\-_.~+/]+=*", re.IGNORECASE), r"\1[redacted]"),
    (re.compile(r"(password[\"']?\s*[:=]\s*[\"']?)[^&\s\"',}]+", re.IGNORECASE), r"\1[redacted]"),
)
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi")


class RequestContextFilter(logging.Filter):
    """Adds the current request id to each record and scrubs secrets from its text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        message = record.getMessage()
        scrubbed = redact(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def setup_logging(*, log_dir: Path, level: str, backup_days: int) -> None:
    """Send every log line to the console and to a daily-rotated file; idempotent."""
    log_dir.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(LOG_FORMAT)
    context = RequestContextFilter()

    console = logging.StreamHandler(sys.stderr)
    file_handler = TimedRotatingFileHandler(
        log_dir / LOG_FILE_NAME,
        when="midnight",
        backupCount=backup_days,
        encoding="utf-8",
        utc=True,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in (console, file_handler):
        handler.setFormatter(formatter)
        handler.addFilter(context)
        root.addHandler(handler)
    root.setLevel(level)

    # uvicorn's own handlers would print lines without request id or redaction: route its
    # records through ours. Its access log is replaced by the request-log middleware.
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("passlib").setLevel(logging.ERROR)
