"""0003: billing wired into the connector: what became of each charge line (status, reason),
where and how it was billed (facility, kind, level, billing round, patient, the charge a credit
reverses, the performing doctor's name), and the order's inpatient flag on the case."""

from sqlalchemy import text

from .ops import add_column

_CHARGE_COLUMNS = (
    ("status", "VARCHAR(14) NOT NULL DEFAULT 'sent'"),
    ("reason", "TEXT NOT NULL DEFAULT ''"),
    ("facility", "VARCHAR(40) NOT NULL DEFAULT ''"),
    ("kind", "VARCHAR(20) NOT NULL DEFAULT 'teleexpertise'"),
    ("level", "INTEGER"),
    ("billing_round", "INTEGER NOT NULL DEFAULT 0"),
    ("patient_id", "VARCHAR(64) NOT NULL DEFAULT ''"),
    ("credit_of", "VARCHAR(64)"),
    ("performed_by_name", "VARCHAR(200) NOT NULL DEFAULT ''"),
    ("performed_by_authority", "VARCHAR(64) NOT NULL DEFAULT ''"),
)


def upgrade(conn) -> None:
    add_column(conn, "cases", "patient_hospitalised", "BOOLEAN NOT NULL DEFAULT FALSE")
    for column, ddl in _CHARGE_COLUMNS:
        add_column(conn, "charges", column, ddl)
    # Rows written before 0003 were all tele-expertise charges queued as sent; give them their
    # patient so yearly limits count them.
    conn.execute(text(
        "UPDATE charges SET patient_id = (SELECT patients.patient_id FROM cases JOIN patients "
        "ON cases.patient_pk = patients.id WHERE cases.accession = charges.accession) "
        "WHERE patient_id = ''"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_charges_control_id "
                      "ON charges (message_control_id)"))
