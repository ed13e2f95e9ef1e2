"""0002: the quality gate's findings on each image (JSON: flags and measures)."""

from .ops import add_column


def upgrade(conn) -> None:
    add_column(conn, "images", "quality", "TEXT NOT NULL DEFAULT '{}'")
