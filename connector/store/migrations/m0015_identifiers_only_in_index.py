"""0015: the identifier index is the one source of a patient's identifiers.

Until now each patients row also kept its other identifiers (`other_ids`) and how the sender
wrote each one (`id_details`), as JSON beside the index. Each row's JSON is folded into the
index: an identifier the row lists and the index lacks is added (unless another record holds
it: the index decides), the namespace and type it kept fill the index's empty ones, and an
identifier the index gives the record that the row no longer lists (the prior identifier of a
merge) becomes inactive: it finds the patient and is sent nowhere. Then both columns go.

And `patient_links`: records the identity server links as one person (ADT^A24 / A37)."""

import json

from sqlalchemy import inspect, text

from .. import schema
from .ops import add_column, drop_column


def upgrade(conn) -> None:
    add_column(conn, "patient_identifiers", "active", "BOOLEAN NOT NULL DEFAULT TRUE")
    present = {c["name"] for c in inspect(conn).get_columns("patients")}
    columns = {c for c in ("other_ids", "id_details") if c in present}
    if columns:
        _fold(conn, columns)
    for column in columns:
        drop_column(conn, "patients", column)
    schema.patient_links.create(conn, checkfirst=True)
    for index in schema.patient_links.indexes:
        index.create(conn, checkfirst=True)


def _fold(conn, columns: set[str]) -> None:
    held = {(r.identifier, r.authority): (r.id, r.patient_pk, r.namespace, r.type)
            for r in conn.execute(text("SELECT id, patient_pk, identifier, authority, namespace,"
                                       " type FROM patient_identifiers"))}
    select_json = ", ".join(c if c in columns else f"'[]' AS {c}"
                            for c in ("other_ids", "id_details"))
    rows = conn.execute(text(f"SELECT id, patient_id, issuer, ins, ins_oid, {select_json} "
                             "FROM patients ORDER BY id")).all()
    for row in rows:
        details = {(d[0], d[1]): (d[2], d[3]) for d in json.loads(row.id_details or "[]")}
        own = [(row.patient_id, row.issuer),
               *(tuple(pair) for pair in json.loads(row.other_ids or "[]"))]
        if row.ins:
            own.append((row.ins, row.ins_oid))
        for key in dict.fromkeys(own):
            namespace, kind = details.get(key, ("", ""))
            if key not in held:
                kind = kind or ("INS" if key == (row.ins, row.ins_oid) else "")
                conn.execute(text(
                    "INSERT INTO patient_identifiers (patient_pk, identifier, authority,"
                    " namespace, type, active) VALUES (:pk, :identifier, :authority,"
                    " :namespace, :type, TRUE)"),
                    {"pk": row.id, "identifier": key[0], "authority": key[1],
                     "namespace": namespace, "type": kind})
                held[key] = (None, row.id, namespace, kind)
                continue
            pk_id, holder, have_ns, have_type = held[key]
            if holder == row.id and (namespace and not have_ns or kind and not have_type):
                conn.execute(text("UPDATE patient_identifiers SET namespace = :ns, type = :type "
                                  "WHERE id = :id"),
                             {"ns": have_ns or namespace, "type": have_type or kind, "id": pk_id})
        for key, (pk_id, holder, _, _) in held.items():
            if holder == row.id and pk_id is not None and key not in own:
                conn.execute(text("UPDATE patient_identifiers SET active = FALSE WHERE id = :id"),
                             {"id": pk_id})
