"""`report_message` and `order_status` of requester destinations: defaults, accepted values,
refusals (a real TOML file in tmp_path)."""

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


@pytest.mark.parametrize("line,words", [
    ('report_message = "MDM^T10"', "report_message 'MDM^T10' is not supported"),
    ('order_status = "ORR^O02"', "order_status 'ORR^O02' is not supported"),
    ('order_status = "on"', "order_status 'on'")])
def test_unknown_forms_are_refused_with_the_choices(tmp_path, line, words):
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, EHR + line + "\n")
    assert words in exc.value.text and "destinations[0]" in exc.value.text
    assert "use one of" in exc.value.hint


def test_accounting_destinations_refuse_requester_keys(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, EHR + ACCOUNTING + 'order_status = "ORM^O01"\n')
    assert "destinations[1]" in exc.value.text and "requester" in exc.value.text
