"""Demo data for the embedded portal: the office, three banks, enterprises, demo logins.

Everything is keyed so a second run finds what the first created and adds only what is
missing (enterprises are generated from their index with a fixed seed).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from app.services import accounts
from models import Enterprise, Organization, OrgKind, Role, SizeClass, User, db
from models.codes import USCC_CHARSET, industry_divisions, uscc_check_digit
from models.sme_size import classify_size

OFFICE_NAME = "福州市金融工作办公室（演示）"
BANK_NAMES = ("兴业银行福州分行（演示）", "福建海峡银行（演示）", "福州农村商业银行（演示）")
DEMO_LOGINS = {
    "office": "office@demo.test",
    "bank": "bank@demo.test",
    "enterprise": "sme@demo.test",
}
# Districts and counties of Fuzhou (GB/T 2260).
REGIONS = ("350102", "350103", "350104", "350105", "350111", "350112", "350121", "350122")
NAME_PARTS = (
    "闽江",
    "榕城",
    "鼓山",
    "海峡",
    "三坊",
    "七巷",
    "东湖",
    "西湖",
    "鳌峰",
    "马尾",
    "乌山",
    "屏山",
    "南台",
    "金山",
    "琅岐",
    "晋安",
    "仓山",
    "连江",
    "长乐",
    "永泰",
)
TRADE_WORDS = {
    "C": "制造",
    "F": "商贸",
    "E": "建设",
    "I": "科技",
    "H": "餐饮",
    "G": "物流",
    "M": "技术服务",
    "L": "商务服务",
    "A": "农业",
    "O": "生活服务",
}
EPOCH = dt.date(2026, 1, 1)


@dataclass(frozen=True)
class DemoSummary:
    password: str
    created_enterprises: int
    total_enterprises: int


def demo_uscc(index: int) -> str:
    rng = random.Random(f"uscc-{index}")  # noqa: S311 - demo data, not security
    body = "91" + rng.choice(REGIONS) + "".join(rng.choice(USCC_CHARSET) for _ in range(9))
    return body + uscc_check_digit(body)


def _demo_enterprise(index: int) -> dict[str, object]:
    rng = random.Random(f"enterprise-{index}")  # noqa: S311 - demo data, not security
    divisions = [d for d in industry_divisions().values() if d.section in TRADE_WORDS]
    division = rng.choice(divisions)
    employees = max(1, int(rng.lognormvariate(3.0, 1.0)))
    revenue_wan = Decimal(str(round(rng.lognormvariate(6.5, 1.3), 2)))
    assets_wan = (revenue_wan * Decimal(str(round(rng.uniform(0.5, 2.5), 2)))).quantize(
        Decimal("0.01")
    )
    name = (
        f"福州{rng.choice(NAME_PARTS)}{rng.choice(NAME_PARTS)}"
        f"{TRADE_WORDS[division.section]}有限公司"
    )
    return {
        "uscc": demo_uscc(index),
        "name": name,
        "legal_representative": rng.choice("林陈黄郑王李张吴刘杨")
        + rng.choice(("建华", "秀英", "志强", "丽娟", "明辉", "海燕", "国平", "晓东")),
        "founded_on": EPOCH - dt.timedelta(days=rng.randint(200, 25 * 365)),
        "region_code": rng.choice(REGIONS),
        "industry_code": division.code,
        "employees": employees,
        "annual_revenue": revenue_wan * 10_000,
        "total_assets": assets_wan * 10_000,
    }


def _get_or_create_org(kind: OrgKind, name: str) -> Organization:
    org = db.session.scalar(
        sa.select(Organization).where(Organization.kind == kind, Organization.name == name)
    )
    return org or accounts.create_organization(None, kind, name)


def _ensure_login(org: Organization, email: str, name: str, password: str) -> None:
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        accounts.create_user(None, org, email, name, Role.ADMIN, password)
    else:
        accounts.set_password(user, password)
        user.is_active = True


def seed_demo(enterprises: int, password: str) -> DemoSummary:
    """Create (or complete) the demo; the three demo logins get ``password``."""
    office = _get_or_create_org(OrgKind.OFFICE, OFFICE_NAME)
    banks = [_get_or_create_org(OrgKind.BANK, name) for name in BANK_NAMES]
    _ensure_login(office, DEMO_LOGINS["office"], "金融办管理员", password)
    _ensure_login(banks[0], DEMO_LOGINS["bank"], "信贷经理", password)

    existing = set(db.session.scalars(sa.select(Enterprise.uscc)))
    created = 0
    first_org: Organization | None = None
    for index in range(enterprises):
        data = _demo_enterprise(index)
        if data["uscc"] in existing:
            if index == 0:
                first_org = db.session.scalar(
                    sa.select(Organization).join(Enterprise).where(Enterprise.uscc == data["uscc"])
                )
            continue
        size = classify_size(
            str(data["industry_code"]),
            int(data["employees"]),  # type: ignore[call-overload]
            Decimal(data["annual_revenue"]),  # type: ignore[arg-type]
            Decimal(data["total_assets"]),  # type: ignore[arg-type]
        )
        org = Organization(kind=OrgKind.ENTERPRISE, name=str(data["name"]))
        db.session.add(org)
        db.session.add(Enterprise(organization=org, size_class=SizeClass(size), **data))
        existing.add(str(data["uscc"]))
        created += 1
        if index == 0:
            first_org = org
    db.session.flush()
    if first_org is not None:
        _ensure_login(first_org, DEMO_LOGINS["enterprise"], "企业经办人", password)
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Enterprise)) or 0
    return DemoSummary(password, created, int(total))
