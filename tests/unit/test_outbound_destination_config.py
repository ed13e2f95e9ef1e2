"""`report_message`, `order_status` and `report_pdf` of requester destinations, and `[http]
public_url` (the base of the URLs they are sent): defaults, accepted values, refusals (a real
TOML file in tmp_path)."""

import pytest

from connector.config import load_config
from connector.domain.errors import ConfigError

EHR = '[[destinations]]\nname = "ehr"\nrole = "requester"\naddress = "127.0.0.1:6661"\n'
ACCOUNTING = ('[[destinations]]\nname = "compta"\nrole = "accounting"\n'
              'address = "127.0.0.1:6662"\n')


def load(tmp_path, text: str):
    path = tmp_path / "telederm.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


def test_defaults_are_oru_and_no_order_status(tmp_path):
    (ehr,) = load(tmp_path, EHR).destinations
    assert (ehr.report_message, ehr.order_status) == ("ORU^R01", "off")


@pytest.mark.parametrize("report", ["ORU^R01", "MDM^T02"])
@pytest.mark.parametrize("status", ["off", "ORM^O01", "OMG^O19", "ORU^R01"])
def test_requester_takes_a_report_form_and_an_order_status_form(tmp_path, report, status):
    config = load(tmp_path, EHR + f'report_message = "{report}"\norder_status = "{status}"\n'
                  + ACCOUNTING)
    ehr, compta = config.destinations
    assert (ehr.report_message, ehr.order_status) == (report, status)
    assert (compta.report_message, compta.order_status) == ("ORU^R01", "off")


def test_an_https_requester_takes_them_too(tmp_path):
    config = load(tmp_path, '[[destinations]]\nname = "ehr"\nrole = "requester"\n'
                  'transport = "https"\naddress = "https://ehr.example/hl7"\n'
                  'report_message = "MDM^T02"\norder_status = "OMG^O19"\n')
    assert (config.destinations[0].transport, config.destinations[0].report_message,
            config.destinations[0].order_status) == ("https", "MDM^T02", "OMG^O19")


@pytest.mark.parametrize("line,key,words", [
    ('report_message = "MDM^T10"', "report_message", ["'MDM^T10'", "'ORU^R01' or 'MDM^T02'"]),
    ('order_status = "ORR^O02"', "order_status", ["'ORR^O02'", "'OMG^O19'"]),
    ('order_status = "on"', "order_status", ["'on'", "'off'"]),
    ('report_pdf = "link"', "report_pdf", ["'link'", "'reference'"])])
def test_unknown_forms_are_refused_with_the_choices(tmp_path, line, key, words):
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, EHR + line + "\n")
    assert all(w in exc.value.text for w in words)
    assert exc.value.where.endswith(f" [destinations[0].{key}]")


@pytest.mark.parametrize("line", ['order_status = "ORM^O01"', 'report_pdf = "none"'])
def test_accounting_destinations_refuse_requester_keys(tmp_path, line):
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, EHR + ACCOUNTING + line + "\n")
    assert exc.value.where.endswith(" [destinations[1]]") and "requester" in exc.value.text


@pytest.mark.parametrize("form", ["embedded", "reference", "none"])
def test_report_pdf_is_embedded_unless_said_and_urls_start_at_public_url(tmp_path, form):
    assert load(tmp_path, EHR).destinations[0].report_pdf == "embedded"
    assert load(tmp_path, EHR).http.base_url == "http://127.0.0.1:8780"
    config = load(tmp_path, '[http]\npublic_url = "https://telederm.chu.example/"\n' + EHR
                  + f'report_pdf = "{form}"\n')
    assert config.destinations[0].report_pdf == form
    assert config.http.base_url == "https://telederm.chu.example"


def test_a_public_url_that_is_no_http_url_is_refused(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, '[http]\npublic_url = "telederm.chu.example"\n')
    assert "http" in exc.value.text and exc.value.where.endswith("[http.public_url]")


def _ack_timeout_config(tmp_path, line: str, transport: str = "mllp",
                        address: str = "127.0.0.1:6661"):
    path = tmp_path / "telederm.toml"
    path.write_text(f"""
[[destinations]]
name = "ehr"
role = "{"accounting" if transport == "file" else "requester"}"
transport = "{transport}"
address = "{address}"
{line}
""", encoding="utf-8")
    return path


def test_ack_timeout_is_read_per_destination_with_a_default_per_transport(tmp_path):
    [dest] = load_config(_ack_timeout_config(tmp_path, "ack_timeout = 120"),
                         environ={}).destinations
    assert dest.answer_timeout() == 120
    [plain] = load_config(_ack_timeout_config(tmp_path, ""), environ={}).destinations
    assert plain.answer_timeout() == 30
    [web] = load_config(_ack_timeout_config(tmp_path, "", "https", "https://ehr.example/hl7"),
                        environ={}).destinations
    assert web.answer_timeout() == 60


@pytest.mark.parametrize("line,transport,address,said", [
    ("ack_timeout = 0", "mllp", "127.0.0.1:6661", "between 0 and 3600"),
    ("ack_timeout = -5", "mllp", "127.0.0.1:6661", "(got -5)"),
    ("ack_timeout = 99999", "mllp", "127.0.0.1:6661", "(got 99999)"),
    ("ack_timeout = true", "mllp", "127.0.0.1:6661", "(got True)"),
    ('ack_timeout = "soon"', "mllp", "127.0.0.1:6661", "soon"),
    ("ack_timeout = 10", "file", "drop", "does not apply to transport file"),
])
def test_a_bad_ack_timeout_is_refused_with_the_key_and_a_hint(tmp_path, line, transport,
                                                              address, said):
    with pytest.raises(ConfigError) as err:
        load_config(_ack_timeout_config(tmp_path, line, transport, address), environ={})
    assert said in err.value.text
    assert err.value.where.endswith(" [destinations[0].ack_timeout]") and err.value.hint


SCHEDULING = ('[[destinations]]\nname = "rdv"\nrole = "scheduling"\n'
              'address = "127.0.0.1:6663"\n')


@pytest.mark.parametrize("line, form", [("", "SIU^S12"), ('follow_up_message = "OMG^O19"\n',
                                                           "OMG^O19")])
def test_scheduling_destinations_take_a_follow_up_form(tmp_path, line, form):
    config = load(tmp_path, SCHEDULING + line)
    (rdv,) = config.destinations_for("scheduling")
    assert rdv.follow_up_message == form


def test_follow_up_message_is_for_scheduling_destinations_only(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, EHR + 'follow_up_message = "SIU^S12"\n')
    assert "scheduling" in exc.value.text
