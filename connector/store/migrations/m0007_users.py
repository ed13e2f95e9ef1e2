"""0007: people who log in to the web pages (`users`) and their browser sessions (`sessions`)."""

from .. import schema


def upgrade(conn) -> None:
    schema.metadata.create_all(conn, tables=[schema.users, schema.sessions], checkfirst=True)
