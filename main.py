"""Entry point: `python main.py` serves on the configured host and port (or `uvicorn main:app`,
without the request-head and idle-connection bounds of app/server.py)."""

import sys

from app.application import create_app
from app.server import serve
from app.utils.exceptions import StartupError

try:
    app = create_app()
except StartupError as exc:
    sys.exit(f"error: {exc}")


if __name__ == "__main__":
    serve(app, app.state.services.settings.server)
