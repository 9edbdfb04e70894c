"""Logging: console plus logs/app.log, rotated at midnight and by size, every line tagged with
a request id, scrubbed of secrets and of control characters (a client cannot forge a line)."""

import io
import logging
import os
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
# C0 and C1 control characters (a CR LF starts a fake line, a NUL makes the file binary), the
# Unicode line and paragraph separators (lines to many readers), and the bidirectional
# overrides that make text read backwards.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
LOG_FILE_MODE = 0o640


class RequestContextFilter(logging.Filter):
    """Adds the current request id to each record; scrubs secrets and control characters."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        message = record.getMessage()
        scrubbed = escape_controls(redact(message))
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def escape_controls(text: str) -> str:
    """Control characters as visible escapes: "\\r\\n" for CR LF, "\\x00" for NUL."""
    return _CONTROL_CHARACTERS.sub(lambda match: repr(match.group())[1:-1], text)


class DailyAndSizeRotatingFileHandler(TimedRotatingFileHandler):
    """Rotates at midnight and whenever the file would grow past ``max_bytes``.

    Rotated files are named by date and a number that only grows (app.log.2026-11-23.000001,
    .000002, ...), so that names sort from oldest to newest and none is ever reused: the
    clean-up, which keeps the last ``backup_count`` names, then always deletes the oldest.
    Files are created readable by the owner and the group only: logs can name users and
    addresses.
    """

    def __init__(self, path: Path, *, max_bytes: int, backup_count: int) -> None:
        self.max_bytes = max_bytes
        super().__init__(
            path, when="midnight", backupCount=backup_count, encoding="utf-8", utc=True
        )
        self.namer = _next_numbered_name

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if super().shouldRollover(record):
            return True
        if self.stream is None:
            return False
        size = self.stream.tell() + len(self.format(record).encode("utf-8")) + 1
        return size > self.max_bytes > 0

    def _open(self) -> io.TextIOWrapper:
        descriptor = os.open(
            self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE
        )
        return os.fdopen(descriptor, "a", encoding=self.encoding, errors=self.errors)


def _next_numbered_name(name: str) -> str:
    """``name`` with a number after it, one more than any rotated file of that name has."""
    folder, base = os.path.split(name)
    numbers = [
        int(suffix)
        for other in os.listdir(folder or ".")
        if other.startswith(base + ".") and (suffix := other[len(base) + 1 :]).isdigit()
    ]
    return f"{name}.{max(numbers, default=0) + 1:06d}"


def setup_logging(*, log_dir: Path, level: str, backup_days: int, max_bytes: int) -> None:
    """Send every log line to the console and to a rotated file; idempotent."""
    log_dir.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(LOG_FORMAT)
    context = RequestContextFilter()

    console = logging.StreamHandler(sys.stderr)
    file_handler = DailyAndSizeRotatingFileHandler(
        log_dir / LOG_FILE_NAME, max_bytes=max_bytes, backup_count=backup_days
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
