"""Identifier and classification codes an enterprise is registered with.

- USCC, 统一社会信用代码 (GB 32100-2015): the only key that links an enterprise's records.
- Region, 行政区划代码 (GB/T 2260): six digits.
- Industry, 国民经济行业分类 (GB/T 4754-2017): section letter + two-digit division ("C13").

Each ``normalize_*`` function accepts what a person types (lower case, full-width
characters from a Chinese input method, stray spaces), returns the canonical form, and
raises :class:`CodeError` whose message names the problem.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources

from flask_babel import lazy_gettext as _l

from ml.uscc import CHARSET as USCC_CHARSET
from ml.uscc import check_digit as uscc_check_digit

USCC_FORBIDDEN = "IOSVZ"

# First two digits of GB/T 2260 codes: provinces, autonomous regions, municipalities,
# Taiwan, Hong Kong and Macao.
PROVINCE_PREFIXES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34",
        "35", "36", "37", "41", "42", "43", "44", "45", "46", "50", "51", "52",
        "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
    }
)  # fmt: skip


class CodeError(ValueError):
    """A code that is not valid; ``str(error)`` is a message fit to show the person typing."""

    def __init__(self, message: object) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


def _clean(raw: str) -> str:
    # NFKC folds full-width "９１Ａ" typed with a Chinese input method into "91A".
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", raw or "")).upper()


def normalize_uscc(raw: str) -> str:
    code = _clean(raw)
    if not code:
        raise CodeError(_l("Enter the 18-character unified social credit code."))
    if len(code) != 18:
        raise CodeError(
            _l("A unified social credit code has 18 characters; this one has %(n)d.", n=len(code))
        )
    forbidden = sorted({c for c in code if c in USCC_FORBIDDEN})
    if forbidden:
        raise CodeError(
            _l(
                "The letters I, O, S, V and Z never appear in a unified social credit code "
                "(found %(letters)s).",
                letters=", ".join(forbidden),
            )
        )
    bad = [(i + 1, c) for i, c in enumerate(code) if c not in USCC_CHARSET]
    if bad:
        pos, char = bad[0]
        raise CodeError(_l("Character %(pos)d (%(char)s) is not allowed.", pos=pos, char=char))
    expected = uscc_check_digit(code[:17])
    if code[17] != expected:
        raise CodeError(
            _l(
                "The check digit (last character) is %(got)s but should be %(want)s: "
                "please check the code for a typing error.",
                got=code[17],
                want=expected,
            )
        )
    return code


def normalize_region_code(raw: str) -> str:
    code = _clean(raw)
    if not re.fullmatch(r"\d{6}", code):
        raise CodeError(_l("An administrative division code is 6 digits, e.g. 350102."))
    if code[:2] not in PROVINCE_PREFIXES:
        raise CodeError(
            _l("%(prefix)s is not a province-level code (the first two digits).", prefix=code[:2])
        )
    if code[2:4] == "00" and code[4:] != "00":
        raise CodeError(_l("A county code needs its city digits (3rd and 4th) to be set."))
    return code


@dataclass(frozen=True, slots=True)
class IndustryDivision:
    section: str
    division: str
    name_zh: str
    section_zh: str
    section_en: str

    @property
    def code(self) -> str:
        return self.section + self.division


@functools.cache
def industry_divisions() -> dict[str, IndustryDivision]:
    """GB/T 4754-2017 divisions keyed by code ("C13"), from ``models/data/gbt4754_2017.csv``."""
    text = resources.files("models.data").joinpath("gbt4754_2017.csv").read_text("utf-8")
    rows = csv.DictReader(text.splitlines())
    return {
        r["section"] + r["division"]: IndustryDivision(
            r["section"], r["division"], r["name_zh"], r["section_zh"], r["section_en"]
        )
        for r in rows
    }


def normalize_industry_code(raw: str) -> str:
    """Canonical ``<section><division>`` form; accepts "c13", "C13", or the bare "13"."""
    code = _clean(raw)
    divisions = industry_divisions()
    if re.fullmatch(r"\d{2,4}", code):
        division = code[:2]
        matches = [k for k, d in divisions.items() if d.division == division]
        if matches:
            return matches[0]
    m = re.fullmatch(r"([A-T])(\d{2})\d{0,2}", code)
    if not m:
        raise CodeError(
            _l("An industry code is a section letter and a two-digit division, e.g. C13.")
        )
    canonical = m.group(1) + m.group(2)
    if canonical not in divisions:
        raise CodeError(
            _l(
                "Division %(division)s does not belong to section %(section)s in GB/T 4754-2017.",
                division=m.group(2),
                section=m.group(1),
            )
        )
    return canonical


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number_check_digit(first17: str) -> str:
    """GB 11643-1999 check character of a resident identity card number."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def normalize_id_number(raw: str) -> str:
    """A resident identity card number (居民身份证号, GB 11643-1999): 17 digits and a check
    character (a digit or X)."""
    code = _clean(raw)
    if not re.fullmatch(r"\d{17}[\dX]", code):
        raise CodeError(_l("An ID card number has 17 digits and a last digit or X."))
    if code[17] != id_number_check_digit(code[:17]):
        raise CodeError(_l("The check character (last) does not match: please check the number."))
    return code


def normalize_mobile(raw: str) -> str:
    """A mainland mobile number: 11 digits starting with 1 (a +86 prefix is dropped)."""
    code = _clean(raw).replace("-", "")
    if code.startswith("+86"):
        code = code[3:]
    if not re.fullmatch(r"1[3-9]\d{9}", code):
        raise CodeError(_l("A mobile number has 11 digits and starts with 13 to 19."))
    return code
