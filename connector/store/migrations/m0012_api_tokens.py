"""0012: API tokens made from the command line (`api_tokens`), kept as digests."""

from .. import schema


def upgrade(conn) -> None:
    schema.metadata.create_all(conn, tables=[schema.api_tokens], checkfirst=True)
