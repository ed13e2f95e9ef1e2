"""0004: French identity and the structured request.

Patients keep their INS (whatever its status), its OID, the identity status (PID-32), the other
identity codes and the other identifiers sent alongside; cases keep the requester's identifier
type and RPPS, the requesting facility (FINESS), the questionnaire answers and the consent as
the order carried them (JSON), and the triage score and level the worklist and the case list
sort on."""

from sqlalchemy import text

from .ops import add_column

_PATIENT_COLUMNS = (
    ("ins", "VARCHAR(15) NOT NULL DEFAULT ''"),
    ("ins_oid", "VARCHAR(64) NOT NULL DEFAULT ''"),
    ("identity_status", "VARCHAR(5) NOT NULL DEFAULT ''"),
    ("identity_flags", "VARCHAR(200) NOT NULL DEFAULT ''"),
    ("other_ids", "TEXT NOT NULL DEFAULT '[]'"),
)
_CASE_COLUMNS = (
    ("requester_id_type", "VARCHAR(10) NOT NULL DEFAULT ''"),
    ("requester_rpps", "VARCHAR(11) NOT NULL DEFAULT ''"),
    ("facility_finess", "VARCHAR(9) NOT NULL DEFAULT ''"),
    ("facility_name", "VARCHAR(100) NOT NULL DEFAULT ''"),
    ("facility_kind", "VARCHAR(5) NOT NULL DEFAULT ''"),
    ("questionnaire", "TEXT NOT NULL DEFAULT '[]'"),
    ("consent", "TEXT NOT NULL DEFAULT ''"),
    ("triage_score", "INTEGER NOT NULL DEFAULT 0"),
    ("triage_level", "VARCHAR(8) NOT NULL DEFAULT ''"),
)


def upgrade(conn) -> None:
    for column, ddl in _PATIENT_COLUMNS:
        add_column(conn, "patients", column, ddl)
    for column, ddl in _CASE_COLUMNS:
        add_column(conn, "cases", column, ddl)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_cases_triage ON cases (triage_score)"))
