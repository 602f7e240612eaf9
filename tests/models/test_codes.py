"""USCC (GB 32100-2015), region (GB/T 2260) and industry (GB/T 4754-2017) codes."""

import pytest

from models.codes import (
    CodeError,
    normalize_industry_code,
    normalize_region_code,
    normalize_uscc,
    uscc_check_digit,
)


@pytest.mark.parametrize("code", ["91350100M000100Y43", "91110000600037341L"])
def test_valid_uscc_accepted(app_ctx, code):
    assert normalize_uscc(code) == code


def test_uscc_typed_in_lower_case_or_full_width_is_normalized(app_ctx):
    assert normalize_uscc(" 91350100m000100y43 ") == "91350100M000100Y43"
    assert normalize_uscc("９１１１００００６０００３７３４１Ｌ") == "91110000600037341L"


def test_uscc_wrong_check_digit_names_expected_digit(app_ctx):
    with pytest.raises(CodeError) as err:
        normalize_uscc("91350100M000100Y44")
    assert "check digit" in str(err.value)
    assert "should be 3" in str(err.value)


@pytest.mark.parametrize("code,n", [("91350100M000100Y4", 17), ("91350100M000100Y433", 19)])
def test_uscc_wrong_length_says_how_long(app_ctx, code, n):
    with pytest.raises(CodeError) as err:
        normalize_uscc(code)
    assert "18 characters" in str(err.value)
    assert f"has {n}" in str(err.value)


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_uscc_forbidden_letters_are_named(app_ctx, letter):
    code = "91350100M000100Y4" + letter
    with pytest.raises(CodeError) as err:
        normalize_uscc(code)
    assert f"found {letter}" in str(err.value)


def test_uscc_other_characters_name_their_position(app_ctx):
    with pytest.raises(CodeError) as err:
        normalize_uscc("91350100M0001-0Y43")
    assert "Character 14 (-)" in str(err.value)


def test_uscc_empty(app_ctx):
    with pytest.raises(CodeError, match="Enter the 18-character"):
        normalize_uscc("   ")


def test_check_digit_round_trip():
    assert uscc_check_digit("91350100M000100Y4") == "3"
    assert uscc_check_digit("91110000600037341") == "L"


@pytest.mark.parametrize("code", ["350102", "110000", "820000", " 440305 "])
def test_region_codes_accepted(app_ctx, code):
    assert normalize_region_code(code) == code.strip()


@pytest.mark.parametrize(
    "code,message",
    [
        ("35010", "6 digits"),
        ("35010A", "6 digits"),
        ("990102", "99 is not a province-level code"),
        ("350012", "city digits"),
    ],
)
def test_region_codes_rejected(app_ctx, code, message):
    with pytest.raises(CodeError, match=message):
        normalize_region_code(code)


@pytest.mark.parametrize(
    "raw,canonical",
    [("C13", "C13"), ("c13", "C13"), ("13", "C13"), ("C1311", "C13"), ("52", "F52")],
)
def test_industry_codes_normalized(app_ctx, raw, canonical):
    assert normalize_industry_code(raw) == canonical


@pytest.mark.parametrize(
    "raw,message",
    [
        ("C99", "Division 99 does not belong to section C"),
        ("F13", "section F"),
        ("X1", "section letter"),
    ],
)
def test_industry_codes_rejected(app_ctx, raw, message):
    with pytest.raises(CodeError, match=message):
        normalize_industry_code(raw)


def test_messages_are_in_chinese_by_default(app):
    with app.app_context(), app.test_request_context("/"):
        with pytest.raises(CodeError) as err:
            normalize_uscc("91350100M000100Y44")
        assert str(err.value) == "校验码（最后一位）为 4，应为 3：请检查是否输入有误。"
