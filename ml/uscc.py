"""GB 32100-2015 unified social credit codes (统一社会信用代码): check digit and fast generation.

Layout of the 18 characters: registration authority (1), organization type (1), region code
(6, GB/T 2260), organization code (9, GB 11714 — 8 body characters and its own check
character), check character (1). The Flask app has its own user-facing validator; this module
is the small, vectorized core used by :mod:`ml.synth` and by feature building.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
"""The 31 characters allowed in a USCC (no I, O, S, V, Z)."""
WEIGHTS: tuple[int, ...] = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_VALUE = {ch: i for i, ch in enumerate(CHARSET)}

_ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)


def check_digit(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters.

    Raises ``ValueError`` if ``first17`` is not 17 characters from :data:`CHARSET`.
    """
    if len(first17) != 17:
        raise ValueError(f"expected 17 characters, got {len(first17)}")
    try:
        total = sum(_VALUE[ch] * w for ch, w in zip(first17, WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not allowed in a USCC") from None
    return CHARSET[(31 - total % 31) % 31]


def is_valid(code: str) -> bool:
    """True when ``code`` is 18 allowed characters with a correct check character."""
    if len(code) != 18 or any(ch not in _VALUE for ch in code):
        return False
    return check_digit(code[:17]) == code[17]


def _org_check(body: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    """GB 11714 check characters for rows of 8 digit values (0–35)."""
    c = 11 - (body @ _ORG_WEIGHTS) % 11  # 1..11; 10 is written "X", 11 is written "0"
    return np.array(list("0123456789X"))[np.where(c == 11, 0, c)]


def generate(
    region_codes: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    authority: str = "9",
    org_type: str = "1",
) -> npt.NDArray[np.str_]:
    """Valid, distinct USCCs, one per entry of ``region_codes`` (6-digit strings).

    Organization-code bodies are 8 distinct random digit strings drawn without replacement,
    so the codes are unique; authority ``"9"`` / type ``"1"`` is an enterprise registered with
    the market-regulation authority.
    """
    regions = np.asarray(region_codes).astype("U6")
    n = regions.shape[0]
    bodies = np.asarray(rng.choice(10**8, size=n, replace=False), dtype=np.int64)
    digits = (bodies[:, None] // 10 ** np.arange(7, -1, -1, dtype=np.int64)) % 10
    org = np.char.add(np.char.zfill(bodies.astype("U8"), 8), _org_check(digits))
    first17 = np.char.add(np.char.add(authority + org_type, regions), org)
    # vectorized GB 32100 check: map characters to values through their byte codes
    raw = np.frombuffer(first17.astype("S17").tobytes(), dtype=np.uint8).reshape(n, 17)
    lut = np.full(256, -1, dtype=np.int64)
    for i, ch in enumerate(CHARSET):
        lut[ord(ch)] = i
    values = lut[raw]
    if (values < 0).any():
        raise ValueError("region codes must be 6 digits")
    check = (31 - (values @ np.array(WEIGHTS, dtype=np.int64)) % 31) % 31
    return np.char.add(first17, np.array(list(CHARSET))[check])
