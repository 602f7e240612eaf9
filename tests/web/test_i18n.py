"""Every user-facing string has a Chinese translation, and both catalogs are compiled."""

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "app" / "translations"


def _source_messages() -> set[str]:
    with open(ROOT / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None, "ngettext": (1, 2)}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_message_has_a_chinese_translation():
    with open(TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = read_po(fh, locale="zh")
    # A plural message's id and string are tuples (singular, plural) and (one per form).
    translated = {
        m.id if isinstance(m.id, str) else m.id[0]
        for m in catalog
        if m.id
        and not m.fuzzy
        and (all(m.string) if isinstance(m.string, tuple | list) else m.string)
    }
    missing = sorted(_source_messages() - translated)
    assert not missing, (
        f"untranslated (run `make i18n` and fill app/translations/zh/.../messages.po): {missing}"
    )


def test_both_catalogs_are_compiled():
    for lang in ("zh", "en"):
        mo = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo"
        assert mo.exists(), f"{mo} missing: run `make translations`"


def test_every_translation_survives_formatting():
    """Templates format every message (``msgstr % params``), with or without parameters: a
    bare ``%`` in a translation (say 年利率（%）) would turn the page into a server error."""
    import re

    placeholder = re.compile(r"%\((\w+)\)[sd]")
    with open(TRANSLATIONS / "zh" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = read_po(fh, locale="zh")
    broken = []
    for message in catalog:
        if not message.id or not message.string or not isinstance(message.id, str):
            continue
        params = dict.fromkeys(placeholder.findall(message.id), 1)
        try:
            message.id % params
            message.string % params
        except (ValueError, TypeError, KeyError) as exc:
            broken.append(f"{message.id!r} → {message.string!r}: {exc}")
    assert not broken, broken
