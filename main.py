"""Entry point: `python main.py` serves on the configured host and port (or `uvicorn main:app`)."""

import sys

import uvicorn

from app.application import create_app
from app.utils.exceptions import StartupError

try:
    app = create_app()
except StartupError as exc:
    sys.exit(f"error: {exc}")


if __name__ == "__main__":
    settings = app.state.services.settings
    # log_config=None keeps the logging set up by create_app (request ids, app.log).
    uvicorn.run(
        app, host=settings.server.host, port=settings.server.port, log_config=None, access_log=False
    )
