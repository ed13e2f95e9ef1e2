#!/usr/bin/env python3
"""Generate mappings/body_sites.csv: the whole CID 4029 "Dermatology Anatomic Site" group.

Sources, in order:
1. pydicom's own copy of PS3.16 (`pydicom.sr._cid_dict.cid_concepts[4029]`, code values and
   meanings from `pydicom.sr._concepts_dict.concepts`): every member, scheme, code and Code
   Meaning verbatim.
2. `mappings/body_sites_fr.csv`, hand-written rows:
   - kind `label`: our French label for a member (its meaning_en must equal pydicom's, so a
     concept renamed in a newer pydicom stops the script instead of silently mislabelling);
   - kind `extra`: a member of the pinned edition that pydicom's table lacks (SCT 82038008
     "Skin of breast", in CID 4029 version 20240913), added as is.
3. For members without a hand-written label, a French label built word by word from the tables
   below (`LEXICON`, `ADJECTIVES`, `PRENOMINAL`): the meaning is split on " of ", each part is a
   noun with English-order adjectives, rendered French-order (noun, then adjectives from the
   closest outwards, agreeing in gender), joined with "de" contracted with the article (du, de
   la, de l', des). If any word is missing from the tables, the English meaning is kept as the
   label and the code is listed on stderr.

The output is sorted by English meaning, has no date in it, and names this script and the pydicom
version in its first line, so running the script twice gives the same bytes.

Usage:  python scripts/generate_body_sites.py [--output PATH] [--overrides PATH] [--check]
`--check` writes nothing and exits 1 if the output file differs from what would be generated.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.sr._cid_dict import cid_concepts, name_for_cid
from pydicom.sr._concepts_dict import concepts

CID = 4029
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "mappings" / "body_sites.csv"
DEFAULT_OVERRIDES = ROOT / "mappings" / "body_sites_fr.csv"
COLUMNS = ("scheme", "code", "meaning_en", "label_fr")
OVERRIDE_COLUMNS = COLUMNS + ("kind",)

# --------------------------------------------------------------------------------------------
# Word-by-word translation tables. Keys are lower-case English; values are (French, gender) with
# gender m, f, mp or fp (plural), and an optional article: "une" for an indefinite reading.
# Multi-word keys are compound nouns or fixed terms French says differently ("lower leg" is
# "jambe", "popliteal fossa" is "creux poplité").

LEXICON: dict[str, tuple[str, ...]] = {
    # body regions
    "abdomen": ("abdomen", "m"), "ankle": ("cheville", "f"), "anus": ("anus", "m"),
    "areola": ("aréole", "f"), "axilla": ("aisselle", "f"), "back": ("dos", "m"),
    "breast": ("sein", "m"), "buttock": ("fesse", "f"), "cheek": ("joue", "f"),
    "chin": ("menton", "m"), "elbow": ("coude", "m"), "face": ("visage", "m"),
    "finger": ("doigt", "m"), "foot": ("pied", "m"), "forearm": ("avant-bras", "m"),
    "forefoot": ("avant-pied", "m"), "forehead": ("front", "m"), "hand": ("main", "f"),
    "head": ("tête", "f"), "heel": ("talon", "m"), "knee": ("genou", "m"),
    "neck": ("cou", "m"), "nipple": ("mamelon", "m"), "nose": ("nez", "m"),
    "palm": ("paume", "f"), "perineum": ("périnée", "m"), "scalp": ("cuir chevelu", "m"),
    "thigh": ("cuisse", "f"), "thorax": ("thorax", "m"), "thumb": ("pouce", "m"),
    "toe": ("orteil", "m"), "trunk": ("tronc", "m"), "umbilicus": ("ombilic", "m"),
    "wrist": ("poignet", "m"), "digit": ("doigt", "m"), "vertex": ("vertex", "m"),
    "jawline": ("ligne de la mâchoire", "f"), "philtrum": ("philtrum", "m"),
    "upper arm": ("bras", "m"), "lower leg": ("jambe", "f"),
    "chest wall": ("paroi thoracique", "f"), "superior back": ("haut du dos", "m"),
    "upper trunk": ("partie supérieure du tronc", "f"),
    "upper abdomen": ("partie supérieure de l'abdomen", "f"),
    "lower abdomen": ("partie inférieure de l'abdomen", "f"),
    "antecubital fossa": ("pli du coude", "m"), "popliteal fossa": ("creux poplité", "m"),
    "gluteal fold": ("pli fessier", "m"), "nasolabial fold": ("sillon nasogénien", "m"),
    "groin skin crease": ("pli de l'aine", "m"), "eye region": ("région périoculaire", "f"),
    "thenar region": ("éminence thénar", "f"),
    "hypothenar region": ("éminence hypothénar", "f"),
    "dorsal area": ("face dorsale", "f"), "palmar area": ("face palmaire", "f"),
    # fingers and toes
    "index finger": ("index", "m"), "middle finger": ("majeur", "m"),
    "ring finger": ("annulaire", "m"), "little finger": ("auriculaire", "m"),
    "great toe": ("gros orteil", "m"),
    # ear, eye, nose, mouth
    "ear": ("oreille", "f"), "ear lobule": ("lobule de l'oreille", "m"),
    "pinna": ("pavillon de l'oreille", "m"), "helix": ("hélix", "m"),
    "antihelix": ("anthélix", "m"),
    # DCM has both "superior" and "upper" antihelix (130318, 130321): keep them apart
    "upper antihelix": ("partie haute de l'anthélix", "f"),
    "lower antihelix": ("partie basse de l'anthélix", "f"),
    "tragus": ("tragus", "m"), "antitragus": ("antitragus", "m"),
    "concha": ("conque", "f"), "crus": ("racine", "f"), "lobule": ("lobule", "m"),
    "intertragal incisure": ("incisure intertragique", "f"),
    "external auditory canal": ("conduit auditif externe", "m"),
    "eye": ("œil", "m"), "eyebrow": ("sourcil", "m"), "eyelash": ("cils", "mp"),
    "eyelid": ("paupière", "f"), "canthus": ("canthus", "m"), "caruncle": ("caroncule", "f"),
    "cornea": ("cornée", "f"), "iris": ("iris", "m"), "retina": ("rétine", "f"),
    "sclera": ("sclère", "f"),
    "lower eyelid margin": ("bord libre de la paupière inférieure", "m"),
    "upper eyelid margin": ("bord libre de la paupière supérieure", "m"),
    "ala nasi": ("aile du nez", "f"), "infraalar groove": ("sillon sous-alaire", "m"),
    "lip": ("lèvre", "f"), "vermilion proper": ("vermillon", "m"), "mouth": ("bouche", "f"),
    "floor": ("plancher", "m"), "tongue": ("langue", "f"), "gingiva": ("gencive", "f"),
    "hard palate": ("palais dur", "m"), "uvula": ("luette", "f"),
    "palatoglossal arch": ("arc palatoglosse", "m"), "pharynx": ("pharynx", "m"),
    "oropharynx": ("oropharynx", "m"), "tooth": ("dent", "f"),
    # genital region
    "external genitalia": ("organes génitaux externes", "mp"), "penis": ("pénis", "m"),
    "glans penis": ("gland du pénis", "m"), "shaft": ("corps", "m"), "root": ("racine", "f"),
    "scrotum": ("scrotum", "m"), "clitoris": ("clitoris", "m"), "prepuce": ("prépuce", "m"),
    "labium": ("lèvre de la vulve", "f"), "labium majus": ("grande lèvre", "f"),
    "labium minus": ("petite lèvre", "f"), "labium majorum": ("grandes lèvres", "fp"),
    "labia minora": ("petites lèvres", "fp"), "frenulum": ("frein", "m"),
    "commissure": ("commissure", "f"), "introitus": ("orifice", "m"),
    "vestibule": ("vestibule", "m"), "orifice": ("orifice", "m"),
    # tissues and generic parts
    "skin": ("peau", "f"), "mucosa": ("muqueuse", "f"), "nail unit": ("appareil unguéal", "m"),
    "hair": ("poils et cheveux", "mp"), "extremity": ("membre", "m"),
    "area": ("région", "f"), "region": ("région", "f"), "aspect": ("face", "f"),
    "surface": ("face", "f"), "part": ("partie", "f", "une"), "portion": ("partie", "f"),
    "segment": ("segment", "m"), "border": ("bord", "m"), "wall": ("paroi", "f"),
    "side": ("côté", "m"), "sole": ("plante", "f"), "dorsum": ("dos", "m"),
    "tip": ("pointe", "f"), "cavity": ("cavité", "f"), "quadrant": ("quadrant", "m"),
    "triangle": ("triangle", "m"), "groove": ("sillon", "m"),
}

# Adjectives placed after the noun: (masculine, feminine); plural adds "s".
ADJECTIVES: dict[str, tuple[str, str]] = {
    "anterior": ("antérieur", "antérieure"), "posterior": ("postérieur", "postérieure"),
    "superior": ("supérieur", "supérieure"), "inferior": ("inférieur", "inférieure"),
    "upper": ("supérieur", "supérieure"), "lower": ("inférieur", "inférieure"),
    "lateral": ("latéral", "latérale"), "medial": ("médial", "médiale"),
    "mid": ("moyen", "moyenne"), "inner": ("interne", "interne"),
    "outer": ("externe", "externe"), "external": ("externe", "externe"),
    "dorsal": ("dorsal", "dorsale"), "palmar": ("palmaire", "palmaire"),
    "plantar": ("plantaire", "plantaire"), "left": ("gauche", "gauche"),
    "female": ("féminin", "féminine"), "male": ("masculin", "masculine"),
    "urethral": ("urétral", "urétrale"), "vaginal": ("vaginal", "vaginale"),
    "vulval": ("vulvaire", "vulvaire"), "oral": ("oral", "orale"),
    "pharyngeal": ("pharyngien", "pharyngienne"), "mandibular": ("mandibulaire", "mandibulaire"),
    "maxillary": ("maxillaire", "maxillaire"), "sternal": ("sternal", "sternale"),
    "thoracic": ("thoracique", "thoracique"), "paraspinal": ("paravertébral", "paravertébrale"),
    "paranasal": ("paranasal", "paranasale"), "perioral": ("péribuccal", "péribuccale"),
    "nuchal": ("nucal", "nucale"), "occipital": ("occipital", "occipitale"),
    "parietal": ("pariétal", "pariétale"), "temporal": ("temporal", "temporale"),
    "epigastric": ("épigastrique", "épigastrique"),
    "hypogastric": ("hypogastrique", "hypogastrique"), "inguinal": ("inguinal", "inguinale"),
    "infraclavicular": ("sous-claviculaire", "sous-claviculaire"),
    "supraclavicular": ("sus-claviculaire", "sus-claviculaire"),
    "submandibular": ("sous-mandibulaire", "sous-mandibulaire"),
    "submental": ("sous-mental", "sous-mentale"),
    "preauricular": ("préauriculaire", "préauriculaire"),
    "postauricular": ("rétro-auriculaire", "rétro-auriculaire"),
}

# Adjectives placed before the noun (ordinals).
PRENOMINAL: dict[str, str] = {
    "second": "deuxième", "third": "troisième", "fourth": "quatrième", "fifth": "cinquième",
}

_VOWELS = tuple("aeiouyàâéèêëîïôœû")
# Elided like a vowel ("de l'hélix"); other h-words are aspirated ("du haut du dos").
_H_MUET = ("hélix",)


@dataclass(frozen=True)
class Phrase:
    text: str
    gender: str  # m, f, mp, fp
    article: str = ""  # "une" for an indefinite reading; "" for the definite article


def noun_phrase(segment: str) -> Phrase | None:
    """French for one " of "-separated part: a known noun with adjectives, or None."""
    words = segment.lower().split()
    if words[:1] == ["the"]:
        words = words[1:]
    whole = " ".join(words)
    if whole in LEXICON:
        french, gender, *article = LEXICON[whole]
        return Phrase(french, gender, article[0] if article else "")
    for start in range(1, len(words)):
        noun = " ".join(words[start:])
        if noun not in LEXICON:
            continue
        french, gender = LEXICON[noun][:2]
        before, after = [], []
        for word in words[:start]:
            if word in PRENOMINAL:
                before.append(PRENOMINAL[word])
            elif word in ADJECTIVES:
                after.insert(0, _agree(ADJECTIVES[word], gender))  # closest to the noun first
            else:
                return None
        return Phrase(" ".join(before + [french] + after), gender)
    return None


def _agree(forms: tuple[str, str], gender: str) -> str:
    word = forms[1] if gender.startswith("f") else forms[0]
    if gender.endswith("p") and not word.endswith(("s", "x")):
        word += "s"
    return word


def _of(phrase: Phrase) -> str:
    """'de' + article + phrase, contracted the French way."""
    if phrase.article == "une":
        return "d'une " + phrase.text
    if phrase.gender.endswith("p"):
        return "des " + phrase.text
    if phrase.text.startswith(_VOWELS) or phrase.text.split()[0] in _H_MUET:
        return "de l'" + phrase.text
    return ("du " if phrase.gender == "m" else "de la ") + phrase.text


def translate(meaning: str) -> str | None:
    """Word-by-word French label for an English Code Meaning, or None if a word is unknown."""
    phrases = [noun_phrase(part) for part in meaning.split(" of ")]
    if any(p is None for p in phrases):
        return None
    head = phrases[0].text
    return " ".join([head[0].upper() + head[1:]] + [_of(p) for p in phrases[1:]])


# --------------------------------------------------------------------------------------------

def pydicom_members() -> dict[tuple[str, str], str]:
    """(scheme, code) -> Code Meaning for every CID 4029 member in the installed pydicom."""
    members: dict[tuple[str, str], str] = {}
    for scheme, keywords in cid_concepts[CID].items():
        for keyword in keywords:
            for code, (meaning, cids) in concepts[scheme][keyword].items():
                if CID in cids:
                    members[(scheme, code)] = meaning
    return members


def read_overrides(path: Path, members: dict[tuple[str, str], str]) -> list[dict[str, str]]:
    """The hand-written rows, checked against pydicom's table; a bad row stops the script."""
    lines = [(n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines or next(csv.reader([lines[0][1]])) != list(OVERRIDE_COLUMNS):
        raise SystemExit(f"{path}: the header must be {','.join(OVERRIDE_COLUMNS)}")
    rows, seen = [], set()
    for number, line in lines[1:]:
        where = f"{path}:{number}"
        cells = next(csv.reader([line]))
        if len(cells) != len(OVERRIDE_COLUMNS):
            raise SystemExit(f"{where}: expected {len(OVERRIDE_COLUMNS)} fields")
        row = dict(zip(OVERRIDE_COLUMNS, (c.strip() for c in cells)))
        key = (row["scheme"], row["code"])
        if key in seen:
            raise SystemExit(f"{where}: {key[0]} {key[1]} is listed twice")
        seen.add(key)
        if not row["label_fr"]:
            raise SystemExit(f"{where}: empty French label")
        if row["kind"] == "label":
            if key not in members:
                raise SystemExit(f"{where}: {key[0]} {key[1]} is not in pydicom's CID {CID}; "
                                 "use kind=extra if the pinned edition has it")
            if members[key] != row["meaning_en"]:
                raise SystemExit(f"{where}: meaning {row['meaning_en']!r} differs from "
                                 f"pydicom's {members[key]!r}")
        elif row["kind"] == "extra":
            if key in members:
                raise SystemExit(f"{where}: {key[0]} {key[1]} is already in pydicom's table; "
                                 "use kind=label")
        else:
            raise SystemExit(f"{where}: kind must be label or extra")
        rows.append(row)
    return rows


def generate(overrides_path: Path = DEFAULT_OVERRIDES) -> tuple[str, list[str]]:
    """The CSV text and the codes whose French label fell back to the English meaning."""
    members = pydicom_members()
    overrides = read_overrides(overrides_path, members)
    labels = {(r["scheme"], r["code"]): r["label_fr"] for r in overrides}
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    untranslated = []
    for key, meaning in members.items():
        label = labels.get(key) or translate(meaning)
        if label is None:
            label = meaning
            untranslated.append(f"{key[0]} {key[1]} {meaning}")
        rows[key] = (meaning, label)
    for row in overrides:
        if row["kind"] == "extra":
            rows[(row["scheme"], row["code"])] = (row["meaning_en"], row["label_fr"])

    out = io.StringIO()
    out.write(f"# Generated by scripts/generate_body_sites.py from pydicom {pydicom.__version__} "
              f"CID {CID} ({name_for_cid[CID]}) + mappings/body_sites_fr.csv; "
              "do not edit, re-run the script.\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for (scheme, code), (meaning, label) in sorted(
            rows.items(), key=lambda item: (item[1][0].casefold(), item[0])):
        writer.writerow((scheme, code, meaning, label))
    return out.getvalue(), sorted(untranslated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--overrides", type=Path, default=DEFAULT_OVERRIDES)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the output file is not what the script would write")
    args = parser.parse_args(argv)
    text, untranslated = generate(args.overrides)
    for line in untranslated:
        print(f"no French translation, English kept: {line}", file=sys.stderr)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run scripts/generate_body_sites.py",
                  file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    rows = text.count("\n") - 2
    print(f"wrote {rows} rows to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
