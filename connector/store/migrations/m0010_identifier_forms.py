"""0007: identifiers are echoed as received or configured. Patients keep, per identifier, the
namespace beside its OID and its type code (PID-3 CX-4.1, CX-5); report versions keep the
signing dermatologist's assigning authority and identifier type (OBR-32, TXA-5); charge lines
keep the performer's identifier type (FT1-20), so a credit names the doctor as the charge did."""

from .ops import add_column


def upgrade(conn) -> None:
    add_column(conn, "patients", "id_details", "TEXT NOT NULL DEFAULT '[]'")
    add_column(conn, "reports", "specialist_authority", "VARCHAR(64) NOT NULL DEFAULT ''")
    add_column(conn, "reports", "specialist_id_type", "VARCHAR(10) NOT NULL DEFAULT ''")
    add_column(conn, "charges", "performed_by_id_type", "VARCHAR(10) NOT NULL DEFAULT ''")
