"""Shared test data for billing: doctors, an order, a two-facility mapping, the shipped rules."""

from pathlib import Path

from connector.billing.engine import LUMP_REASON, load_shipped
from connector.billing.facilities import load_facilities
from connector.domain.model import Order, Patient, PersonName, Practitioner

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings" / "billing"
NGAP, RULES = load_shipped(MAPPINGS)

REQ = Practitioner("801111111111", PersonName("MARTIN", "Élise"), "1.2.250.1.71.4.2.1")
REQ2 = Practitioner("801111111112", PersonName("BERNARD", "Paul"))
SPEC = Practitioner("802222222222", PersonName("LEFÈVRE", "François"), "1.2.250.1.71.4.2.1")
SPEC2 = Practitioner("802222222223", PersonName("PETIT", "Anne"))
PEOPLE = {p.id: p for p in (REQ, REQ2, SPEC, SPEC2)}
ORDER = Order(sender="DPI_CHU", placer_order_number="CMD-2026-0042",
              patient=Patient("IPP0012345", PersonName("DUPONT", "Hélène"), issuer="CHU_A",
                              birth_date="19580312", sex="F"),
              requester=REQ, question="Lésion pigmentée ?")

FACILITIES_TOML = '''
default = "CHU_A"

[[facility]]
id = "CHU_A"
label = "CHU A"
coding_system = "99CHUA"
send_amounts = true
department = "UF100"

[[facility]]
id = "CLIN_B"
label = "Clinique B"
coding_system = "99B"
send_amounts = false
department = "UF200"
''' + "".join(f'''
[[charge]]
facility = "CHU_A"
code = "{code}"
charge_code = "A-{code}"
label = "A {code}"
''' for code in ("TE1", "TE2", "RQD", "TC", "TCG", "MPC", "MCS", "MCG")) + "".join(f'''
[[charge]]
facility = "CLIN_B"
code = "{code}"
charge_code = "B-{code}"
label = "B {code}"
{'department = "UF201"' if code == "RQD" else ""}
''' for code in ("TE1", "TE2", "RQD", "TC", "TCG", "MPC", "MCS", "MCG"))


def facilities(folder: Path):
    path = folder / "facilities.toml"
    path.write_text(FACILITIES_TOML, encoding="utf-8")
    return load_facilities(path, tariffs=NGAP)


def reasons() -> dict[str, str]:
    """Rule id -> the reason it gives, plus "lump"."""
    out = {"lump": LUMP_REASON}
    for rows in (RULES.combinations, RULES.limits, RULES.exclusions):
        out.update({r.id: r.reason for r in rows})
    return out
