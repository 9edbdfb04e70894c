"""Alembic environment: runs on the app's own connection, or on the configured database."""

from alembic import context
from sqlalchemy import Connection

from app.database.tables import Base


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    # Invoked from the alembic command line: use the database config.ini points at.
    from app.config import load_settings
    from app.database.engine import create_db_engine

    settings = load_settings()
    engine = create_db_engine(
        settings.database_url,
        pool_size=settings.database.pool_size,
        pool_recycle=settings.database.pool_recycle,
    )
    with engine.connect() as connection:
        run_migrations(connection)
        connection.commit()


main()
