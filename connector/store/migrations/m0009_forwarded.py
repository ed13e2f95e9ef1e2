"""0007: the objects each hospital PACS acknowledged (`[[dicom.forward]]`)."""

from ..schema import forwarded


def upgrade(conn) -> None:
    forwarded.create(conn, checkfirst=True)
    for index in forwarded.indexes:
        index.create(conn, checkfirst=True)
