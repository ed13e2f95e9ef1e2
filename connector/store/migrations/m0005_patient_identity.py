"""0005: patient identity messages (ADT^A08/A31 updates, A40 merges) look up every case of a
patient: index cases by their patient record."""

from sqlalchemy import text


def upgrade(conn) -> None:
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_cases_patient ON cases (patient_pk)"))
