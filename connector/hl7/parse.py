"""Bytes to a parsed HL7 v2 message, with the checks every inbound message needs.

Character set rule (MSH-18, first repetition):
- `UNICODE UTF-8` -> UTF-8; `8859/1` ... `8859/9`, `8859/15` -> that ISO 8859 part; undecodable
  bytes are a 102 error at MSH^1^18 (we never guess against a declared charset).
- empty or `ASCII` -> strict UTF-8, and if that fails, ISO 8859-1. Senders that leave MSH-18
  empty often send UTF-8 or Latin-1 anyway; a Latin-1 text is almost never valid UTF-8 by
  accident, and Latin-1 decodes any byte, so this never loses a message.
- anything else (UTF-16, JIS, ...) -> a 103 error at MSH^1^18.
Delimiters are ASCII in every supported charset, so MSH-18 is read from the raw bytes first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from .errors import Hl7Error

SUPPORTED_VERSIONS = ("2.3.1", "2.4", "2.5", "2.5.1")

_CODECS = {"UNICODE UTF-8": "utf-8", "8859/15": "iso8859-15"}
_CODECS.update({f"8859/{n}": f"iso8859-{n}" for n in range(1, 10)})

_DTM = re.compile(r"\d{4}(\d{2}){0,5}(\.\d{1,4})?([+-]\d{4})?")
_LOCATION = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<occ>\d+)\])?"
    r"(?:-(?P<field>\d+)(?:\[(?P<rep>\d+)\])?(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?)?$")


class Location(NamedTuple):
    """An HL7 position written `PID-3.1`, `OBR-16`, `PID-3[2].4.2` (2nd repetition) or
    `NTE[2]-3` (2nd NTE segment). Omitted occurrence/repetition mean the first; `component` 0
    means the whole field (read as its first component). A named tuple: mappers build and
    hash dozens of these per message."""

    segment: str
    occurrence: int = 1
    field: int = 0
    repetition: int = 1
    component: int = 0
    subcomponent: int = 0

    @classmethod
    def parse(cls, text: str) -> "Location":
        m = _LOCATION.match(text)
        if not m or "[0]" in text or "0" in (m["field"], m["comp"], m["sub"]):
            raise ValueError(f"not an HL7 position like PID-3.1: {text!r}")
        return cls(m["seg"], int(m["occ"] or 1), int(m["field"] or 0), int(m["rep"] or 1),
                   int(m["comp"] or 0), int(m["sub"] or 0))

    def at(self, *, occurrence: int | None = None, repetition: int | None = None,
           component: int | None = None, subcomponent: int | None = None) -> "Location":
        """The same position with some parts changed."""
        return Location(self.segment, self.occurrence if occurrence is None else occurrence,
                        self.field, self.repetition if repetition is None else repetition,
                        self.component if component is None else component,
                        self.subcomponent if subcomponent is None else subcomponent)

    def erl(self) -> str:
        """The ERR-2 form at field level, e.g. `PID^1^3`."""
        base = f"{self.segment}^{self.occurrence}"
        return f"{base}^{self.field}" if self.field else base

    def __str__(self) -> str:
        text = self.segment + (f"[{self.occurrence}]" if self.occurrence != 1 else "")
        if self.field:
            text += f"-{self.field}" + (f"[{self.repetition}]" if self.repetition != 1 else "")
        for part in (self.component, self.subcomponent):
            text += f".{part}" if part else ""
        return text


@dataclass(frozen=True)
class Header:
    """The MSH fields an ACK needs; also salvageable from a message that failed to parse.
    Composite fields (HD) are kept as tuples of unescaped components."""

    sending_application: tuple[str, ...] = ()
    sending_facility: tuple[str, ...] = ()
    receiving_application: tuple[str, ...] = ()
    receiving_facility: tuple[str, ...] = ()
    message_type: str = ""
    trigger: str = ""
    control_id: str = ""
    processing_id: str = ""
    version: str = ""
    charset: str = ""


class ParsedMessage:
    """A decoded message with its MSH summary and a position reader.

    Segments are split into fields once; repetitions, components and subcomponents are split
    when a position is read, so a mapper reading thirty positions pays for those only. The
    reading rules are python-hl7's `extract_field` (a deeper tree than the position follows
    first children; a shallower one answers only for position 1) — a property test holds the
    two to the same answers — but nothing here logs a value it cannot unescape.
    """

    def __init__(self, tree: "_Tree", header: Header):
        self.tree = tree
        self.header = header

    control_id = property(lambda self: self.header.control_id)
    message_type = property(lambda self: self.header.message_type)
    trigger = property(lambda self: self.header.trigger)
    version = property(lambda self: self.header.version)
    charset = property(lambda self: self.header.charset)

    @property
    def sender(self) -> str:
        """`APP|FAC` from MSH-3.1 and MSH-4.1: the scope of the sender's control and order ids."""
        h = self.header
        return f"{_first(h.sending_application)}|{_first(h.sending_facility)}"

    def segment_ids(self) -> list[str]:
        return [seg_id for seg_id, _ in self.tree.segments]

    def value(self, location: str | Location) -> str:
        """The unescaped text at a position (`PID-3.1`, `OBR-16`, ...); "" when absent.
        A field-level position reads its first component and subcomponent."""
        return self.tree.read(*(location if location.__class__ is Location
                                else Location.parse(location)))

    def part(self, loc: Location, component: int, subcomponent: int = 0) -> str:
        """One component (or subcomponent) of the field at `loc`, unescaped and stripped: what
        mappers read from composites, a dozen times per message (no Location built)."""
        return self.tree.read(loc.segment, loc.occurrence, loc.field, loc.repetition,
                              component, subcomponent).strip()

    def components(self, location: str | Location) -> tuple[str, ...]:
        """All components of one repetition of a field, unescaped (first subcomponent each);
        () when the field is empty."""
        loc = location if isinstance(location, Location) else Location.parse(location)
        return self.tree.components(loc)

    def with_first(self, segment: str, occurrence: int) -> "ParsedMessage":
        """The message read as if occurrence `occurrence` of `segment` came first: how the
        second patient of an ADT^A24 (its second PID) is read by the mappers that read PID.
        Positions of errors raised from it say occurrence 1."""
        tree = object.__new__(_Tree)
        for name in _Tree.__slots__:
            setattr(tree, name, getattr(self.tree, name))
        found = self.tree._by_id.get(segment, [])
        if occurrence <= len(found):
            chosen = found[occurrence - 1]
            tree._by_id = {**self.tree._by_id,
                           segment: [chosen, *(f for f in found if f is not chosen)]}
        else:
            tree._by_id = {**self.tree._by_id, segment: []}
        tree._split_cache = {}
        return ParsedMessage(tree, self.header)

    def repetitions(self, location: str | Location) -> list[str]:
        """Every repetition's value at a position, e.g. all lines of `NTE[2]-3`."""
        loc = location if isinstance(location, Location) else Location.parse(location)
        count = len(self.tree.repetition_texts(loc))
        return [self.tree.read(loc.segment, loc.occurrence, loc.field, rep, loc.component,
                               loc.subcomponent) for rep in range(1, count + 1)]


class _Tree:
    """One message's segments as `(id, fields)`, `fields[n]` being field n's raw text (MSH-1
    and MSH-2 included, as in the standard's numbering), and the message's delimiters."""

    __slots__ = ("segments", "_by_id", "field_sep", "rep", "comp", "sub", "esc", "_split_cache")

    def __init__(self, text: str):
        fs = text[3]
        end = text.find(fs, 4)
        if end < 0:
            raise ValueError("no field after MSH-2")
        enc = text[4:end]
        self.field_sep = fs
        self.comp = enc[0] if len(enc) > 0 else "^"
        self.rep = enc[1] if len(enc) > 1 else "~"
        self.esc = enc[2] if len(enc) > 2 else "\\"
        self.sub = enc[3] if len(enc) > 3 else "&"
        self.segments: list[tuple[str, list[str]]] = []
        self._by_id: dict[str, list[list[str]]] = {}
        self._split_cache: dict[tuple[str, int, int], list[list[str]]] = {}
        for line in text.split("\r"):
            if line[:3] in ("MSH", "BHS", "FHS") and len(line) > 3 and line[3] == fs:
                cut = line.find(fs, 4)
                fields = ([line[:3], fs, line[4:cut]] + line[cut + 1:].split(fs) if cut >= 0
                          else [line[:3], fs, line[4:]])
            else:
                fields = line.split(fs)
            seg_id = fields[0].split(self.rep, 1)[0]
            self.segments.append((seg_id, fields))
            self._by_id.setdefault(seg_id, []).append(fields)

    def _fields(self, loc: Location) -> list[str] | None:
        found = self._by_id.get(loc.segment)
        if not found or loc.occurrence > len(found) or not loc.field or loc.field >= len(
                found[loc.occurrence - 1]):
            return None
        return found[loc.occurrence - 1]

    def repetition_texts(self, loc: Location) -> list[str]:
        fields = self._fields(loc)
        if fields is None:
            return []
        if loc.segment in ("MSH", "BHS", "FHS") and loc.field in (1, 2):
            return [fields[loc.field]]
        return fields[loc.field].split(self.rep)

    def _split(self, loc: Location) -> list[list[str]]:
        """One field as repetitions -> components (raw text), split once per message: mappers
        read a field's parts one by one. Subcomponents are split when read (most parts have
        none)."""
        key = (loc.segment, loc.occurrence, loc.field)
        tree = self._split_cache.get(key)
        if tree is None:
            comp = self.comp
            tree = [rep.split(comp) for rep in self.repetition_texts(loc)]
            self._split_cache[key] = tree
        return tree

    def read(self, segment: str, occurrence: int, field: int, repetition: int, component: int,
             subcomponent: int) -> str:
        """The text at a position given as a Location's parts. A deeper tree than the position
        follows first children; a shallower one answers only for position 1 (python-hl7's
        `extract_field`): splitting a leaf gives one part. The hot path of every mapper:
        written flat."""
        if field in (1, 2) and segment in _HEADERS:  # the delimiters themselves
            reps = self.repetition_texts(Location(segment, occurrence, field))
            text = reps[0] if reps and repetition == 1 else ""
            return text if (component or 1) == 1 and (subcomponent or 1) == 1 else ""
        reps = self._split_cache.get((segment, occurrence, field))
        if reps is None:
            reps = self._split(Location(segment, occurrence, field))
        if repetition > len(reps):
            return ""
        parts = reps[repetition - 1]
        if component > len(parts):
            return ""
        text = parts[component - 1 if component else 0]
        sub = self.sub
        if sub in text:
            subs = text.split(sub)
            if subcomponent > len(subs):
                return ""
            text = subs[subcomponent - 1 if subcomponent else 0]
        elif subcomponent > 1:
            return ""
        return self.unescape(text) if self.esc in text else text

    def components(self, loc: Location) -> tuple[str, ...]:
        if loc.field in (1, 2) and loc.segment in ("MSH", "BHS", "FHS"):
            text = self.read(*loc)
            return (text,) + ("",) * text.count(self.comp) if text else ()
        reps = self._split(loc)
        if loc.repetition > len(reps):
            return ()
        sub = self.sub
        parts = tuple(self.unescape(part.split(sub, 1)[0] if sub in part else part)
                      for part in reps[loc.repetition - 1])
        return parts if any(parts) else ()

    def unescape(self, text: str) -> str:
        """HL7 escape sequences (v2.5 section 2.7) to text: delimiters \\F\\ \\S\\ \\T\\ \\R\\ \\E\\,
        hex \\Xhh..\\, formatting (.br, .sp ...); highlighting \\H\\ \\N\\ as python-hl7 does; a
        sequence we cannot read (charset switches, malformed hex) is dropped."""
        esc = self.esc
        if esc not in text:
            return text
        out: list[str] = []
        pieces = text.split(esc)
        # pieces alternate: text, sequence, text, sequence, ...; a trailing odd sequence is
        # unterminated and dropped, as python-hl7 does.
        for index, piece in enumerate(pieces):
            if index % 2 == 0:
                out.append(piece)
            elif index < len(pieces) - 1:
                out.append(self._sequence(piece))
        return "".join(out)

    def _sequence(self, value: str) -> str:
        simple = {"F": self.field_sep, "S": self.comp, "T": self.sub, "R": self.rep,
                  "E": self.esc, "H": "_", "N": "_"}
        if not value:
            return ""
        if value in simple:
            return simple[value]
        if value.startswith(".") and value[:3] in _FORMATTING:
            count = value[3:]
            if not count:
                return _FORMATTING[value[:3]]
            return _FORMATTING[value[:3]] * int(count) if count.isdigit() else ""
        if value[0] == "X":
            digits = value[1:]
            out = []
            for off in range(0, len(digits), 2):
                pair = digits[off:off + 2]
                if not re.fullmatch(r"[0-9A-Fa-f]{1,2}", pair):
                    break
                out.append(chr(int(pair, 16)))
            return "".join(out)
        return ""


_HEADERS = ("MSH", "BHS", "FHS")
_FORMATTING = {".br": "\r", ".sp": "\r", ".fi": "", ".nf": "", ".in": "    ", ".ti": "    ",
               ".sk": " ", ".ce": "\r"}


def is_timestamp(value: str) -> bool:
    """True for HL7 TS/DTM syntax: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]."""
    return bool(_DTM.fullmatch(value))


def codec(charset: str) -> str | None:
    """The Python codec for an MSH-18 value; UTF-8 for empty/ASCII; None when unsupported."""
    charset = charset.strip().upper()
    return "utf-8" if charset in ("", "ASCII") else _CODECS.get(charset)


def decode(raw: bytes) -> str:
    """Bytes to text following MSH-18 (see the module docstring for the rule)."""
    charset = _raw_charset(raw)
    if charset in ("", "ASCII"):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    name = codec(charset)
    if name is None:
        raise Hl7Error(f"character set {charset!r} is not supported", hl7_code=103,
                       location="MSH^1^18", hint="send UNICODE UTF-8, 8859/1 or 8859/15")
    try:
        return raw.decode(name)
    except UnicodeDecodeError:
        raise Hl7Error(f"bytes are not valid {charset}", hl7_code=102, location="MSH^1^18",
                       hint="make MSH-18 match the encoding actually used") from None


def encode(text: str) -> bytes:
    """Text of one message to bytes in the charset its own MSH-18 declares (UTF-8 otherwise)."""
    start = text.find("MSH")
    line = re.split(r"[\r\n]", text[start:], maxsplit=1)[0] if start >= 0 else ""
    return text.encode(codec(_msh18(line)) or "utf-8")


def parse(raw: bytes) -> ParsedMessage:
    """Decode and parse one message; raise `Hl7Error` when it cannot be taken as a message:
    no MSH (100), undecodable (102/103), MSH-9/MSH-10/MSH-12 missing (101), version not one of
    `SUPPORTED_VERSIONS` (203, AR)."""
    text = _normalise(decode(raw))
    if not text.startswith("MSH") or len(text) < 8:
        raise Hl7Error("message does not start with an MSH segment", hl7_code=100,
                       location="MSH^1")
    try:
        tree = _Tree(text)
    except ValueError:
        raise Hl7Error("MSH segment cannot be parsed", hl7_code=100, location="MSH^1") from None
    header = _header(tree)
    for field, value in ((9, header.message_type), (10, header.control_id), (12, header.version)):
        if not value:
            raise Hl7Error(f"MSH-{field} is empty", hl7_code=101, location=f"MSH^1^{field}")
    if header.version not in SUPPORTED_VERSIONS:
        raise Hl7Error(f"HL7 version {header.version} is not supported", hl7_code=203,
                       location="MSH^1^12", hint="send one of " + ", ".join(SUPPORTED_VERSIONS))
    _check_content(tree)
    return ParsedMessage(tree, header)


# Control characters have no place in HL7 text (segments end with CR; ESC, kept, opens the
# ISO 2022 character sets): a NUL would be stored and sent on to the specialist.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")
# Field lengths past which a message is refused: MSH-10 as long as our inbox keeps it (HL7
# v2.5 says 20, v2.7 199; 64 takes UUIDs), OBR-13 as HL7 v2.5.1 sets it, and any other field
# past 65,536 characters (the largest of the standard, TX and FT), except OBX-5, whose ED
# value carries whole documents (a report's PDF) and is bounded by the message size only.
MAX_CONTROL_ID = 64
MAX_FIELD_LENGTHS: dict[tuple[str, int], int | None] = {
    ("MSH", 10): MAX_CONTROL_ID, ("OBR", 13): 300, ("OBX", 5): None}
MAX_ANY_FIELD = 65_536
# A segment ID is three upper-case letters or digits, the first a letter (Z-segments included).
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")


def _check_content(tree: "_Tree") -> None:
    """Refuse (AE, 100) a line that is not a segment and (AE, 102 at the field) control
    characters and fields beyond their length."""
    counts: dict[str, int] = {}
    for index, (seg_id, fields) in enumerate(tree.segments, start=1):
        if not _SEGMENT_ID.fullmatch(seg_id):
            raise Hl7Error(f"line {index} does not start with a segment ID", hl7_code=100,
                           hint="start every segment with its three-character ID (PID, OBR...)")
        counts[seg_id] = occurrence = counts.get(seg_id, 0) + 1
        for number, value in enumerate(fields):
            if not number:
                continue
            where = f"{seg_id}^{occurrence}^{number}"
            if _CONTROL.search(value):
                raise Hl7Error(f"{seg_id}-{number} contains a control character",
                               hl7_code=102, location=where,
                               hint="send text without NUL or other control characters")
            limit = MAX_FIELD_LENGTHS.get((seg_id, number), MAX_ANY_FIELD)
            if limit is not None and len(value) > limit:
                raise Hl7Error(f"{seg_id}-{number} is longer than {limit} characters",
                               hl7_code=102, location=where,
                               hint=f"send at most {limit} characters in {seg_id}-{number}")


def salvage_header(raw: bytes) -> Header:
    """Best-effort MSH of bytes that may not parse at all; empty fields where nothing is found.
    Never raises: it feeds ACKs for broken input and log lines."""
    start = raw.find(b"MSH")
    if start < 0:
        return Header()
    line = re.split(rb"[\r\n]", raw[start:], maxsplit=1)[0]
    try:
        return _header(_Tree(line.decode(codec(_raw_charset(line)) or "latin-1", "replace")))
    except Exception:  # salvage must not fail; an empty header still yields an ACK
        return Header()


def _header(tree: _Tree) -> Header:
    """The MSH summary, read from the MSH fields directly (every message pays for it): each
    field's first repetition, components unescaped (first subcomponent each), as `read`."""
    found = tree._by_id.get("MSH")
    fields = found[0] if found else []
    rep, comp, sub, unescape = tree.rep, tree.comp, tree.sub, tree.unescape

    def parts(field: int) -> tuple[str, ...]:
        if field >= len(fields):
            return ()
        values = tuple(unescape(part.split(sub, 1)[0])
                       for part in fields[field].split(rep, 1)[0].split(comp))
        return values if any(values) else ()

    def read(field: int, component: int = 1) -> str:
        values = parts(field)
        return values[component - 1].strip() if component <= len(values) else ""

    return Header(parts(3), parts(4), parts(5), parts(6), read(9), read(9, 2), read(10),
                  read(11), read(12), read(18))


def _normalise(text: str) -> str:
    """Segments end with CR on the wire; accept LF and CRLF from files and sloppy senders."""
    text = text.lstrip("\ufeff").replace("\r\n", "\r").replace("\n", "\r")
    return re.sub(r"\r{2,}", "\r", text).strip("\r \t")  # blank lines are not segments


def _raw_charset(raw: bytes) -> str:
    """MSH-18 read from the bytes before decoding (delimiters are ASCII in every charset)."""
    start = raw.find(b"MSH")
    if start < 0:
        return ""
    return _msh18(re.split(rb"[\r\n]", raw[start:], maxsplit=1)[0].decode("latin-1"))


def _msh18(line: str) -> str:
    """First repetition and component of MSH-18 in an MSH line, upper-cased."""
    if len(line) < 8:
        return ""
    sep, comp, rep = line[3], line[4], line[5]
    fields = line.split(sep)
    if len(fields) <= 17:  # fields[0] is "MSH", fields[n] is MSH-(n+1)
        return ""
    return fields[17].split(rep)[0].split(comp)[0].strip().upper()


def _first(parts: tuple[str, ...]) -> str:
    return parts[0] if parts else ""
