"""The structured request (questionnaire answers in OBX), the triage it gives, and the patient's
consent a new order must carry."""

from dataclasses import replace

import pytest

from connector.domain.errors import ConfigError
from connector.domain.model import Priority
from connector.hl7.errors import Hl7Error
from connector.hl7.orm import MAPPING_FILE, load_mapping, order_from_orm
from connector.hl7.parse import parse
from connector.hl7.questionnaire import QUESTIONNAIRE_FILE, load_questionnaire

CONSENT = "OBX|1|CWE|CONSENT^Consentement^L||Y^Oui^HL70136||||||F|||20261115"


@pytest.fixture
def order(sample):
    """The NW sample without its OBX, with (segment, field, value) changes, then `obx` segments
    (the consent first unless `consent=False`), read by order_from_orm."""
    text = sample("orm_o01_nw.hl7").decode("utf-8")

    def read(*obx, changes=(), consent=True, mapping=None, extra=()):
        segments = [s for s in text.split("\r") if s and not s.startswith("OBX|")]
        for segment_id, field, value in changes:
            i = next(i for i, seg in enumerate(segments) if seg.startswith(segment_id + "|"))
            fields = segments[i].split("|")
            fields += [""] * (field + 1 - len(fields))
            fields[field] = value
            segments[i] = "|".join(fields)
        segments += ([CONSENT] if consent else []) + list(obx) + list(extra)
        return order_from_orm(parse(("\r".join(segments) + "\r").encode("utf-8")), mapping)[1]
    return read


def refusal(call, *args, **kwargs) -> Hl7Error:
    with pytest.raises(Hl7Error) as exc:
        call(*args, **kwargs)
    return exc.value


def obx(n: int, code: str, value: str, value_type: str = "CWE") -> str:
    return f"OBX|{n}|{value_type}|{code}^Question^L||{value}||||||F"


# --- the sample ---------------------------------------------------------------------------

def test_questionnaire_sample_gives_answers_in_item_order_consent_and_triage(sample):
    o = order_from_orm(parse(sample("orm_o01_nw_questionnaire.hl7")))[1]
    got = {a.item: a.values for a in o.questionnaire}
    assert list(got) == ["duration", "evolution", "symptoms", "phototype", "size_mm",
                         "personal_history", "family_history", "treatments", "red_flags"]
    assert got["symptoms"] == ("ITCH", "BLEEDING") and got["size_mm"] == ("8",)
    assert got["personal_history"] == ("N",) and got["family_history"] == ("Y",)
    red = {a.item: a.red_flags for a in o.questionnaire if a.red_flags}
    assert red == {"evolution": ("RAPID",), "symptoms": ("BLEEDING",),
                   "red_flags": ("ASYMMETRY", "EVOLVING")}
    # routine (0) + rapid 20 + bleeding 15 + phototype II 2 + family 5 + asymmetry 10
    # + evolving 15 = 67 -> HIGH (>= 40)
    assert (o.priority, o.triage.score, o.triage.level) == (Priority.ROUTINE, 67, "HIGH")
    assert o.triage.red_flags == ("evolution:RAPID", "symptoms:BLEEDING",
                                  "red_flags:ASYMMETRY", "red_flags:EVOLVING")
    assert (o.consent.source, o.consent.given_at) == ("OBX", "20261115")
    evolution = next(a for a in o.questionnaire if a.item == "evolution")
    assert evolution.label == ("Évolution", "Evolution")
    assert evolution.value_labels == (("RAPID", "Évolution rapide", "Rapid change"),)


# --- triage -------------------------------------------------------------------------------

@pytest.mark.parametrize("priority,flags,score,level", [
    ("R", "", 0, "ROUTINE"),
    ("R", "ULCERATION", 20, "MEDIUM"),
    ("R", "ULCERATION~RAPID_GROWTH", 40, "HIGH"),
    ("A", "", 50, "HIGH"),
    ("S", "", 100, "STAT"),
    ("R", "NONE", 0, "ROUTINE"),
])
def test_triage_adds_priority_points_and_red_flag_weights(order, priority, flags, score, level):
    answers = (obx(2, "DERM-ALERTES", flags),) if flags else ()
    o = order(*answers, changes=[("TQ1", 9, priority)])
    assert (o.triage.score, o.triage.level) == (score, level)


def test_triage_weights_and_levels_come_from_the_questionnaire_file(tmp_path, order):
    path = tmp_path / "questionnaire.toml"
    path.write_text(QUESTIONNAIRE_FILE.read_text(encoding="utf-8").replace(
        'ULCERATION = { fr = "Ulcération", en = "Ulceration", weight = 20',
        'ULCERATION = { fr = "Ulcération", en = "Ulceration", weight = 120'), encoding="utf-8")
    mapping = replace(load_mapping(), questionnaire=load_questionnaire(path))
    o = order(obx(2, "DERM-ALERTES", "ULCERATION"), mapping=mapping)
    assert (o.triage.score, o.triage.level) == (50 + 120, "STAT")  # urgent (TQ1-9 A) + 120


# --- validation of answers ----------------------------------------------------------------

def test_answer_not_allowed_gives_103_at_its_obx_without_quoting_it(order):
    error = refusal(order, obx(2, "DERM-EVOLUTION", "FAST"), obx(3, "DERM-ALERTES", "NONE"))
    assert (error.hl7_code, error.location, error.ack_code) == ("103", "OBX^2^5", "AE")
    assert "FAST" not in error.text and "RAPID" in error.hint


def test_coded_answers_are_matched_without_case_and_stored_as_in_the_file(order):
    o = order(obx(2, "derm-evolution", "rapid"))
    assert o.questionnaire[0].values == ("RAPID",)


@pytest.mark.parametrize("value,stored", [("Y", "Y"), ("oui", "Y"), ("NON", "N"), ("n", "N")])
def test_yes_no_answers_accept_the_synonyms_of_the_file(order, value, stored):
    o = order(obx(2, "DERM-ATCD-PERSO", value, "ID"))
    assert o.questionnaire[0].values == (stored,)


def test_yes_no_answer_that_is_neither_gives_103(order):
    assert refusal(order, obx(2, "DERM-ATCD-PERSO", "PEUT-ETRE", "ID")).hl7_code == "103"


@pytest.mark.parametrize("value,code", [("huit", "102"), ("-1", "103"), ("501", "103")])
def test_number_answers_are_checked(order, value, code):
    error = refusal(order, obx(2, "DERM-TAILLE", value, "NM"))
    assert (error.hl7_code, error.location) == (code, "OBX^2^5")


def test_several_answers_to_a_one_answer_question_give_102(order):
    error = refusal(order, obx(2, "DERM-EVOLUTION", "RAPID~SLOW"))
    assert (error.hl7_code, error.location) == ("102", "OBX^2^5")


def test_one_answer_question_answered_twice_gives_102_at_the_second(order):
    error = refusal(order, obx(2, "DERM-EVOLUTION", "RAPID"), obx(3, "DERM-EVOLUTION", "SLOW"))
    assert (error.hl7_code, error.location) == ("102", "OBX^3^5")


def test_multiple_answers_may_come_in_repetitions_or_several_obx(order):
    o = order(obx(2, "DERM-SYMPTOMES", "ITCH~PAIN"), obx(3, "SYMPTOMS", "BLEEDING~ITCH"))
    assert o.questionnaire[0].values == ("ITCH", "PAIN", "BLEEDING")
    assert (o.questionnaire[0].weight, o.questionnaire[0].red_flags) == (20, ("BLEEDING",))


def test_empty_answer_gives_101(order):
    error = refusal(order, obx(2, "DERM-EVOLUTION", ""))
    assert (error.hl7_code, error.location) == ("101", "OBX^2^5")


def test_text_answers_join_their_lines(order):
    o = order(obx(2, "DERM-TRAITEMENTS-TEXTE", "Dermocorticoïde 2 semaines~sans effet", "TX"))
    assert o.questionnaire[0].values == ("Dermocorticoïde 2 semaines\nsans effet",)


def test_images_majorations_and_unknown_codes_are_not_questions(order):
    o = order("OBX|2|ED|PHOTO^Photo^L||^IM^JPEG^Base64^AAAA||||||F",
              "OBX|3|CE|MAJORATION^Majoration NGAP^L||MCS^^NGAP",
              obx(4, "POIDS", "72", "NM"), obx(5, "DERM-PHOTOTYPE", "IV"))
    assert [(a.item, a.values) for a in o.questionnaire] == [("phototype", ("IV",))]


def test_unknown_codes_can_be_refused(tmp_path, order):
    path = tmp_path / "questionnaire.toml"
    path.write_text(QUESTIONNAIRE_FILE.read_text(encoding="utf-8").replace(
        'unknown_codes = "ignore"', 'unknown_codes = "refuse"'), encoding="utf-8")
    mapping = replace(load_mapping(), questionnaire=load_questionnaire(path))
    error = refusal(order, obx(2, "POIDS", "72", "NM"), mapping=mapping)
    assert (error.hl7_code, error.location) == ("103", "OBX^2^3")


def test_cancel_reads_no_questionnaire_and_needs_no_consent(order):
    o = order(obx(1, "DERM-EVOLUTION", "FAST"), consent=False, changes=[("ORC", 1, "CA")])
    assert (o.questionnaire, o.consent, o.triage.level) == ((), None, "")


# --- consent ------------------------------------------------------------------------------

def test_new_order_without_consent_is_refused_with_101_saying_what_to_send(order):
    error = refusal(order, obx(1, "DERM-EVOLUTION", "RAPID"), consent=False)
    assert (error.hl7_code, error.location, error.ack_code) == ("101", "OBX^2^5", "AE")
    assert error.text == ("patient consent to the tele-expertise is missing: send an OBX with "
                          "OBX-3 CONSENT and OBX-5 Y")
    assert "CONSENTEMENT" in error.hint and "OUI" in error.hint


def test_new_order_without_any_obx_is_refused_at_the_first_obx(order):
    error = refusal(order, consent=False)
    assert (error.hl7_code, error.location) == ("101", "OBX^1^5")


def test_consent_answered_no_is_refused_at_its_obx(order):
    error = refusal(order, "OBX|1|CWE|CONSENT^Consentement^L||N^Non^HL70136||||||F",
                    consent=False)
    assert (error.hl7_code, error.location) == ("101", "OBX^1^5")
    assert "not given" in error.text


def test_consent_code_and_yes_values_come_from_the_mapping(order):
    o = order("OBX|1|CWE|CONSENTEMENT^Consentement^L||OUI||||||F", consent=False)
    assert (o.consent.source, o.consent.given_at) == ("OBX", "")


def con_mapping(tmp_path, required="true"):
    path = tmp_path / "orm.toml"
    path.write_text(MAPPING_FILE.read_text(encoding="utf-8").replace(
        'source = "obx"                       # "obx" | "con"', 'source = "con"').replace(
        "required = true", f"required = {required}"), encoding="utf-8")
    return load_mapping(path)


def test_consent_may_be_a_con_segment_when_the_mapping_says_so(tmp_path, order):
    mapping = con_mapping(tmp_path)
    o = order(consent=False, mapping=mapping,
              extra=("CON|1|TELEEXP^Télé-expertise^L|||||||||A||20261115",))
    assert (o.consent.source, o.consent.given_at) == ("CON", "20261115")
    error = refusal(order, consent=False, mapping=mapping,
                    extra=("CON|1|TELEEXP^Télé-expertise^L|||||||||R",))
    assert (error.hl7_code, error.location) == ("101", "CON^1^11")
    error = refusal(order, mapping=mapping)  # an OBX consent does not count then
    assert (error.hl7_code, error.location) == ("101", "CON^1^11")
    assert error.text.endswith("missing: send a CON segment with CON-11 A")


def test_consent_may_be_optional(tmp_path, order):
    assert order(consent=False, mapping=con_mapping(tmp_path, "false")).consent is None


# --- the questionnaire file ---------------------------------------------------------------

def test_shipped_questionnaire_is_loaded_once_with_both_languages():
    q = load_questionnaire()
    assert q is load_questionnaire()
    assert all(item.fr and item.en for item in q.items)
    assert q.item_for("derm-alertes").id == "red_flags"


@pytest.mark.parametrize("old,new,key", [
    ('type = "number"', 'type = "integer"', "items.size_mm.type"),
    ('label = { fr = "Évolution", en = "Evolution" }', 'label = { fr = "Évolution" }',
     "items.evolution.label.en"),
    ('RAPID = { fr = "Évolution rapide", en = "Rapid change", weight = 20',
     'RAPID = { fr = "Évolution rapide", en = "Rapid change", weight = "20"',
     "items.evolution.answers.RAPID.weight"),
    ('codes = ["DERM-SYMPTOMES", "SYMPTOMS"]', 'codes = ["DERM-SYMPTOMES", "PHOTOTYPE"]',
     "items.phototype.codes"),
    ('HIGH = 40', 'HIGH = 400', "triage.levels"),
    ('urgent = 50\n', '', "triage.priority.urgent"),
    ('unknown_codes = "ignore"', 'unknown_codes = "warn"', "obx.unknown_codes"),
    ('[items.duration]', '[items.Duration]', "items.Duration"),
    ('yes = ["Y", "YES", "O", "OUI"]', 'yes = ["Y", "N"]', "values"),
])
def test_malformed_questionnaire_names_file_and_key(tmp_path, old, new, key):
    text = QUESTIONNAIRE_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "questionnaire.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_questionnaire(path)
    assert f"{path} [{key}]" in [p.where for p in exc.value.problems], exc.value.one_line()


def test_unreadable_questionnaire_names_the_file(tmp_path):
    path = tmp_path / "questionnaire.toml"
    path.write_text("[items\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_questionnaire(path)
    assert exc.value.where == str(path)


def test_malformed_questionnaire_names_every_bad_key_at_once(tmp_path):
    text = QUESTIONNAIRE_FILE.read_text(encoding="utf-8")
    for old, new in (('type = "number"', 'type = "integer"'),
                     ('unknown_codes = "ignore"', 'unknown_codes = "warn"'),
                     ('HIGH = 40', 'HIGH = "40"')):
        text = text.replace(old, new, 1)
    path = tmp_path / "questionnaire.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_questionnaire(path)
    assert sorted(p.where for p in exc.value.problems) == [
        f"{path} [{key}]" for key in ("items.size_mm.type", "obx.unknown_codes",
                                      "triage.levels.HIGH")]
