"""make_engine and migrate on a real SQLite file and a real PostgreSQL database."""

import dataclasses

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from connector.domain.errors import StoreUnavailable
from connector.store import schema
from connector.store.migrations import MIGRATIONS
from connector.store.db import make_engine, migrate
from tests.support.store_samples import TEST_AUDIT_KEY, stamp

LATEST = MIGRATIONS[-1][0]


def _with_patient_json_columns(conn) -> None:
    """Give `patients` back the JSON identifier columns it had before 0015, as a database at an
    earlier version has them."""
    conn.execute(text("ALTER TABLE patients ADD COLUMN other_ids TEXT NOT NULL DEFAULT '[]'"))
    conn.execute(text("ALTER TABLE patients ADD COLUMN id_details TEXT NOT NULL DEFAULT '[]'"))


def test_make_engine_creates_the_folder_when_it_is_missing(tmp_path):
    path = tmp_path / "deep" / "er" / "telederm.db"
    engine = make_engine(f"sqlite:///{path}", TEST_AUDIT_KEY)
    migrate(engine)
    engine.dispose()
    assert path.is_file()


def test_sqlite_connection_uses_wal_and_foreign_keys_when_made_by_make_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'telederm.db'}", TEST_AUDIT_KEY)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()


def test_migrate_creates_every_table_when_database_is_new(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}", TEST_AUDIT_KEY)
    assert migrate(engine) == LATEST
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    assert names == {"schema_version", "counters", "patients", "cases", "images", "reports",
                     "charges", "inbox", "outbox", "audit", "users", "sessions", "forwarded",
                     "timers", "absences", "api_tokens", "patient_identifiers",
                     "identity_incidents", "follow_ups", "patient_links", "leases"}


def test_migrate_adds_the_forwarded_table_when_the_database_predates_it(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}", TEST_AUDIT_KEY)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE forwarded"))
        conn.execute(text("DELETE FROM schema_version WHERE version = 9"))
    assert migrate(engine) == LATEST
    with engine.begin() as conn:
        conn.execute(schema.forwarded.insert().values(
            destination="pacs", sop_uid="1.2.3", accession="TE00000001", sop_class_uid="1.2",
            transfer_syntax_uid="1.2.840.10008.1.2.4.50", status=0, at="2025-01-01T00:00:00Z"))
        with pytest.raises(IntegrityError):  # one row per PACS and object
            conn.execute(schema.forwarded.insert().values(
                destination="pacs", sop_uid="1.2.3", accession="TE00000001", sop_class_uid="1.2",
                transfer_syntax_uid="1.2", status=0, at="2025-01-01T00:00:01Z"))
    engine.dispose()


def test_migrate_is_idempotent_when_run_twice(engine):
    assert migrate(engine) == LATEST
    with engine.connect() as conn:
        rows = conn.execute(select(schema.schema_version)).all()
    assert [(r.version, r.name) for r in rows] == [(v, name) for v, name, _ in MIGRATIONS]


def test_migrate_keeps_existing_rows_when_run_again(engine):
    with engine.begin() as conn:
        conn.execute(schema.counters.insert().values(name="accession", value=41))
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(select(schema.counters.c.value)).scalar() == 41


def test_migrate_raises_store_unavailable_when_database_path_is_a_folder(tmp_path):
    folder = tmp_path / "db-is-a-folder"
    folder.mkdir()
    engine = make_engine(f"sqlite:///{folder}", TEST_AUDIT_KEY)
    with pytest.raises(StoreUnavailable) as exc:
        migrate(engine)
    engine.dispose()
    assert exc.value.http_status == 503 and exc.value.hint


def test_foreign_key_is_enforced_when_an_image_names_an_unknown_case(engine):
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(schema.images.insert().values(
            accession="TD99999999", sop_uid="1.2.3", series_uid="1.2", sop_class_uid="1.2.840",
            kind="photo", source_sha256="0" * 64, path="/x.dcm", created_at=stamp()))


def test_migrate_adds_the_quality_column_when_the_database_is_at_version_1(engine):
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE images DROP COLUMN quality"))
        conn.execute(text("DELETE FROM schema_version WHERE version > 1"))
    assert migrate(engine) == LATEST
    assert "quality" in {c["name"] for c in inspect(engine).get_columns("images")}


def test_migrate_adds_the_billing_columns_when_the_database_is_at_version_2(engine):
    from tests.support.store_samples import make_order, open_case
    with engine.begin() as conn:
        case = open_case(conn, make_order("P-MIG", patient_id="IPP-MIG"))
        conn.execute(text("DROP INDEX ix_charges_control_id"))
        for column in ("status", "reason", "facility", "kind", "level", "billing_round",
                       "patient_id", "credit_of", "performed_by_name", "performed_by_authority",
                       "performed_by_id_type"):  # m0010
            conn.execute(text(f"ALTER TABLE charges DROP COLUMN {column}"))
        conn.execute(text("ALTER TABLE cases DROP COLUMN patient_hospitalised"))
        conn.execute(text("DELETE FROM schema_version WHERE version > 2"))
        conn.execute(text(
            "INSERT INTO charges (accession, transaction_id, code, role, type, amount_cents, "
            "act_date, performed_by, ordered_by, message_control_id, created_at) VALUES "
            f"('{case.accession}', 'ABCDEFGHIJKL', 'TE2', 'requis', 'CG', 2000, '20250101', "
            "'810001234567', '801234567897', 'DFT1', '2025-01-01T00:00:00+00:00')"))
    assert migrate(engine) == LATEST
    with engine.connect() as conn:
        row = conn.execute(select(schema.charges)).one()
        hospitalised = conn.execute(select(schema.cases.c.patient_hospitalised)).scalar()
    assert (row.status, row.reason, row.kind, row.billing_round, row.patient_id, row.level,
            row.credit_of, row.facility) == ("sent", "", "teleexpertise", 0, "IPP-MIG", None,
                                             None, "")
    assert hospitalised is False
    assert "ix_charges_control_id" in {i["name"] for i in inspect(engine).get_indexes("charges")}


def test_migrate_adds_the_care_network_when_the_database_is_at_version_10(engine):
    from tests.support.store_samples import make_order, open_case
    with engine.begin() as conn:
        case = open_case(conn, make_order("P-NET", patient_id="IPP-NET"))
        conn.execute(text("DROP TABLE timers"))
        conn.execute(text("DROP TABLE absences"))
        conn.execute(text("DROP INDEX ix_cases_assignee"))
        conn.execute(text("DROP INDEX ix_cases_due"))
        for column in ("pool", "assigned_to", "due_at", "answered_at", "escalations"):
            conn.execute(text(f"ALTER TABLE cases DROP COLUMN {column}"))
        _with_patient_json_columns(conn)
        conn.execute(text("DELETE FROM schema_version WHERE version > 10"))
    assert migrate(engine) == LATEST
    with engine.connect() as conn:
        row = conn.execute(select(schema.cases)).one()
    assert (row.accession, row.pool, row.assigned_to, row.due_at, row.escalations) == (
        case.accession, "", "", "", 0)
    assert {"timers", "absences"} <= set(inspect(engine).get_table_names())


def test_migrate_indexes_every_identifier_of_existing_patients_when_at_version_12(engine):
    """0013: each patients row gives the index its identifier, INS and other identifiers (with
    the namespace and type it kept); one that two rows held stays with the older row and
    becomes an identity incident."""
    import json

    from connector.store import cases, identity
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE patient_identifiers"))
        conn.execute(text("DROP TABLE identity_incidents"))
        conn.execute(text("DELETE FROM schema_version WHERE version > 12"))
        _with_patient_json_columns(conn)
        first = _old_patient(conn, patient_id="279035121518989", issuer="1.2.250.1.213.1.4.8",
                             family="CŒUR", ins="279035121518989", ins_oid="1.2.250.1.213.1.4.8",
                             identity_status="QUAL",
                             other_ids=json.dumps([["IPP-1", "1.2.250.1.999.1"]]),
                             id_details=json.dumps([["IPP-1", "1.2.250.1.999.1", "CHU_DEMO",
                                                     "PI"]]))
        second = _old_patient(conn, patient_id="IPP-2", issuer="1.2.250.1.999.1",
                              family="MARTIN", other_ids=json.dumps(
                                  [["IPP-1", "1.2.250.1.999.1"], ["X-9", "LAB"]]))
    assert migrate(engine) == LATEST
    with engine.connect() as conn:
        rows = {(r.identifier, r.authority): (r.patient_pk, r.namespace, r.type)
                for r in conn.execute(select(schema.patient_identifiers))}
        incidents = conn.execute(select(schema.identity_incidents)).all()
        assert cases.find_patient(conn, "IPP-1", "1.2.250.1.999.1") == first
        assert cases.find_patient(conn, "X-9", "LAB") == second
        assert identity.summary(conn)["conflicts"] == 1
    assert rows == {("279035121518989", "1.2.250.1.213.1.4.8"): (first, "", "INS"),
                    ("IPP-1", "1.2.250.1.999.1"): (first, "CHU_DEMO", "PI"),
                    ("IPP-2", "1.2.250.1.999.1"): (second, "", ""),
                    ("X-9", "LAB"): (second, "", "")}
    assert [(i.kind, i.message_type) for i in incidents] == [("conflict", "migration")]
    assert "IPP" not in incidents[0].reason


DB_KEY = bytes(range(32))


def test_a_keyed_sqlite_store_is_encrypted_whole_mode_0600_and_opens_with_its_key_only(tmp_path):
    import sqlite3
    path = tmp_path / "keyed" / "telederm.db"
    engine = make_engine(f"sqlite:///{path}", TEST_AUDIT_KEY, DB_KEY)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO counters (name, value) VALUES ('QUIVERLANDE', 1)"))
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()
    assert b"QUIVERLANDE" not in b"".join(p.read_bytes() for p in path.parent.iterdir())
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(path).execute("SELECT * FROM sqlite_master").fetchall()
    with pytest.raises(StoreUnavailable, match="does not open with the configured key"):
        make_engine(f"sqlite:///{path}", TEST_AUDIT_KEY, bytes(32)).connect()
    again = make_engine(f"sqlite:///{path}", TEST_AUDIT_KEY, DB_KEY)
    with again.connect() as conn:
        assert conn.execute(text("SELECT value FROM counters WHERE name = 'QUIVERLANDE'")
                            ).scalar() == 1
    again.dispose()


def test_a_plain_store_is_encrypted_in_place_and_a_keyed_one_is_refused_a_second_time(tmp_path):
    from connector.store.db import encrypt_sqlite
    path = tmp_path / "telederm.db"
    plain = make_engine(f"sqlite:///{path}", TEST_AUDIT_KEY)
    migrate(plain)
    with plain.begin() as conn:
        conn.execute(text("INSERT INTO counters (name, value) VALUES ('QUIVERLANDE', 7)"))
    plain.dispose()
    with pytest.raises(StoreUnavailable, match="does not open with the configured key"):
        make_engine(f"sqlite:///{path}", TEST_AUDIT_KEY, DB_KEY).connect()

    encrypt_sqlite(path, DB_KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["telederm.db"]
    assert b"QUIVERLANDE" not in path.read_bytes()
    keyed = make_engine(f"sqlite:///{path}", TEST_AUDIT_KEY, DB_KEY)
    assert migrate(keyed) == LATEST
    with keyed.connect() as conn:
        assert conn.execute(text("SELECT value FROM counters WHERE name = 'QUIVERLANDE'")
                            ).scalar() == 7
    keyed.dispose()
    with pytest.raises(StoreUnavailable, match="not a plain SQLite file"):
        encrypt_sqlite(path, DB_KEY)


def _old_patient(conn, **values) -> int:
    """Insert a patients row as a database before 0015 held it (with its JSON columns)."""
    values = {**dict.fromkeys(("given", "birth_date", "sex", "ins", "ins_oid", "identity_status",
                               "identity_flags"), ""),
              "other_ids": "[]", "id_details": "[]", **values}
    names = ", ".join(values)
    return conn.execute(text(f"INSERT INTO patients ({names}) VALUES "
                             f"({', '.join(':' + k for k in values)}) RETURNING id"),
                        values).scalar_one()


def test_migrate_makes_the_index_the_only_source_of_identifiers_when_at_version_14(engine):
    """0015: what a patients row listed (`other_ids`, `id_details`) is folded into the index —
    a missing identifier added, an empty namespace or type filled, an identifier the row no
    longer listed (a merge's prior one) kept inactive: it finds the patient, is sent nowhere —
    and both columns are dropped."""
    import json

    from connector.store import cases
    from connector.store.identity import index
    from tests.support.store_samples import make_order, open_case
    with engine.begin() as conn:
        case = open_case(conn, make_order("P-15", patient_id="IPP-15"))
        pk = cases.find_patient(conn, "IPP-15", case.order.patient.issuer)
        index(conn, pk, dataclasses.replace(case.order.patient, other_ids=(("OLD-1", "LAB"),)))
        _with_patient_json_columns(conn)
        conn.execute(text("UPDATE patients SET other_ids = :ids, id_details = :details"),
                     {"ids": json.dumps([["LAB-7", "LAB"]]),
                      "details": json.dumps([["IPP-15", case.order.patient.issuer, "", "PI"],
                                             ["LAB-7", "LAB", "", "MR"]])})
        conn.execute(text("DELETE FROM schema_version WHERE version > 14"))
    assert migrate(engine) == LATEST
    assert not {"other_ids", "id_details"} & {c["name"] for c in
                                              inspect(engine).get_columns("patients")}
    with engine.connect() as conn:
        patient = cases.load(conn, case.accession).order.patient
        assert cases.find_patient(conn, "OLD-1", "LAB") == pk
    assert patient.other_ids == (("LAB-7", "LAB"),)
    assert set(patient.id_details) == {("IPP-15", case.order.patient.issuer, "", "PI"), ("LAB-7", "LAB", "", "MR")}
