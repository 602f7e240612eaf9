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


def test_templates_translate_in_the_locale_in_force_when_they_render(app):
    """Templates resolve their catalogue once per render (``templating.translation_callables``),
    not once per request: a job that renders inside ``force_locale`` gets that language even
    when the request already rendered in another, and back again after."""
    from flask import render_template_string
    from flask_babel import force_locale

    source = (
        '{{ _("Prospects") }}|{{ _("Page %(page)d of %(pages)d", page=2, pages=3) }}|'
        '{{ ngettext("%(num)d enterprise has authorized your bank; %(qualified)d qualify for at '
        'least one of your products.", "%(num)d enterprises have authorized your bank; '
        '%(qualified)d qualify for at least one of your products.", 2, qualified=1) }}'
    )
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        with force_locale("zh"):
            chinese = render_template_string(source)
        with force_locale("en"):
            english = render_template_string(source)
        with force_locale("zh"):
            again = render_template_string(source)
    assert chinese.split("|")[:2] == ["潜在客户", "第 2 页，共 3 页"]
    assert english == (
        "Prospects|Page 2 of 3|2 enterprises have authorized your bank; "
        "1 qualify for at least one of your products."
    )
    assert "2" in chinese.split("|")[2] and "1" in chinese.split("|")[2]
    assert again == chinese


def test_translated_strings_escape_their_arguments_in_html(app):
    from flask import render_template_string
    from flask_babel import force_locale

    with app.test_request_context("/"), force_locale("en"):
        page = render_template_string('{{ _("Page %(page)s of %(pages)s", page="<b>", pages=1) }}')
        text = render_template_string('{{ _("<i>%(s)s</i>", s="&") }}')
    assert page == "Page &lt;b&gt; of 1"
    assert text == "<i>&amp;</i>"  # the message itself is markup; only its arguments escape


def test_a_percent_sign_is_formatted_even_without_arguments(app):
    """Jinja's "newstyle" rule, kept by the per-render gettext: every message is a format
    string, so a literal percent sign is written "%%" whether or not arguments follow."""
    from flask import render_template_string
    from flask_babel import force_locale

    with app.test_request_context("/"), force_locale("en"):
        assert render_template_string('{{ _("100%% covered") }}') == "100% covered"
        assert render_template_string('{{ _("no percent here") }}') == "no percent here"
