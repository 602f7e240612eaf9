"""The bank's product form: terms, then eligibility rules as data."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DecimalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from app.forms import MultiCheckboxField
from app.services.authorization import SCOPE_LABELS
from app.services.products import ProductTerms, grades
from models import ProductType, RepaymentMethod

TEN_THOUSAND = Decimal(10_000)
TYPE_LABELS = {
    ProductType.CREDIT: _l("Credit loan (信用贷)"),
    ProductType.TAX_BASED: _l("Tax-based loan (税易贷)"),
    ProductType.PROVIDENT_FUND_BASED: _l("Provident-fund-based loan"),
    ProductType.GOVERNMENT_PROCUREMENT: _l("Government-procurement loan (政采贷)"),
    ProductType.FIRST_LOAN: _l("First loan (首贷)"),
}
REPAYMENT_LABELS = {
    RepaymentMethod.EQUAL_INSTALLMENT: _l("Equal monthly instalments"),
    RepaymentMethod.EQUAL_PRINCIPAL: _l("Equal principal"),
    RepaymentMethod.INTEREST_ONLY: _l("Monthly interest, principal at maturity"),
    RepaymentMethod.BULLET: _l("Principal and interest at maturity"),
}


def _codes(text: str | None) -> tuple[str, ...]:
    """ "C, F51 ，I65" → ("C", "F51", "I65"): commas (also full-width) or spaces."""
    raw = (text or "").replace("，", ",").replace("、", ",").replace(" ", ",")
    return tuple(dict.fromkeys(c.strip().upper() for c in raw.split(",") if c.strip()))


class ProductForm(FlaskForm):
    name = StringField(_l("Product name"), validators=[DataRequired(), Length(max=120)])
    product_type = SelectField(
        _l("Type"), choices=[SelectChoice(t.value, label) for t, label in TYPE_LABELS.items()]
    )
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)])
    amount_min_wan = DecimalField(
        _l("Minimum amount (10,000 CNY)"),
        places=2,
        validators=[InputRequired(), NumberRange(min=0)],
    )
    amount_max_wan = DecimalField(
        _l("Maximum amount (10,000 CNY)"),
        places=2,
        validators=[InputRequired(), NumberRange(min=0)],
    )
    term_min_months = IntegerField(_l("Shortest term (months)"), validators=[InputRequired()])
    term_max_months = IntegerField(_l("Longest term (months)"), validators=[InputRequired()])
    rate_min = DecimalField(
        _l("Lowest annual rate (percent)"), places=3, validators=[InputRequired()]
    )
    rate_max = DecimalField(
        _l("Highest annual rate (percent)"), places=3, validators=[InputRequired()]
    )
    repayment_method = SelectField(
        _l("Repayment"),
        choices=[SelectChoice(m.value, label) for m, label in REPAYMENT_LABELS.items()],
    )
    upfront_fee_pct = DecimalField(
        _l("Upfront fee (percent of the amount)"),
        places=3,
        default=Decimal(0),
        validators=[Optional()],
    )
    response_days = IntegerField(
        _l("Answer within (working days)"), default=5, validators=[InputRequired()]
    )
    min_grade = SelectField(_l("Minimum grade"), choices=[])
    public_credit_classes = MultiCheckboxField(
        _l("Public-credit classes accepted"),
        choices=[SelectChoice(c, c) for c in "ABCD"],
    )
    min_years_operating = DecimalField(
        _l("Minimum years in business"), places=1, validators=[Optional()]
    )
    min_annual_sales_wan = DecimalField(
        _l("Minimum annual sales from tax data (10,000 CNY)"), places=2, validators=[Optional()]
    )
    min_tax_months = IntegerField(
        _l("Minimum continuous months of tax payment"), validators=[Optional()]
    )
    min_social_months = IntegerField(
        _l("Minimum continuous months of social insurance"), validators=[Optional()]
    )
    industries_allowed = StringField(
        _l("Industries allowed"),
        description=_l("GB/T 4754 sections or divisions, e.g. C, F51; empty = all"),
    )
    industries_excluded = StringField(_l("Industries excluded"))
    regions_allowed = StringField(
        _l("Regions allowed"), description=_l("GB/T 2260 prefixes, e.g. 35, 3501; empty = all")
    )
    regions_excluded = StringField(_l("Regions excluded"))
    size_classes = MultiCheckboxField(
        _l("Size classes"),
        choices=[
            SelectChoice("micro", _l("Micro")),
            SelectChoice("small", _l("Small")),
            SelectChoice("medium", _l("Medium")),
            SelectChoice("large", _l("Large")),
        ],
    )
    required_scopes = MultiCheckboxField(
        _l("Data the enterprise must have authorized"),
        choices=[SelectChoice(k, label) for k, label in SCOPE_LABELS.items()],
    )
    pool_participation = BooleanField(_l("Takes part in the risk-compensation pool"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_grade.choices = [SelectChoice("", _l("No minimum"))] + [
            SelectChoice(g, g) for g in grades()
        ]

    def terms(self) -> ProductTerms:
        def wan(field: Any) -> Decimal | None:
            return None if field.data is None else Decimal(field.data) * TEN_THOUSAND

        return ProductTerms(
            name=self.name.data or "",
            product_type=ProductType(self.product_type.data),
            description=self.description.data or "",
            amount_min=wan(self.amount_min_wan) or Decimal(0),
            amount_max=wan(self.amount_max_wan) or Decimal(0),
            term_min_months=self.term_min_months.data or 0,
            term_max_months=self.term_max_months.data or 0,
            rate_min=Decimal(self.rate_min.data or 0),
            rate_max=Decimal(self.rate_max.data or 0),
            repayment_method=RepaymentMethod(self.repayment_method.data),
            upfront_fee_pct=Decimal(self.upfront_fee_pct.data or 0),
            response_days=self.response_days.data or 0,
            min_grade=self.min_grade.data or None,
            public_credit_classes=tuple(self.public_credit_classes.data or ()),
            min_years_operating=None
            if self.min_years_operating.data is None
            else Decimal(self.min_years_operating.data),
            min_annual_sales=wan(self.min_annual_sales_wan),
            min_tax_months=self.min_tax_months.data,
            min_social_months=self.min_social_months.data,
            industries_allowed=_codes(self.industries_allowed.data),
            industries_excluded=_codes(self.industries_excluded.data),
            regions_allowed=_codes(self.regions_allowed.data),
            regions_excluded=_codes(self.regions_excluded.data),
            size_classes=tuple(self.size_classes.data or ()),
            required_scopes=tuple(self.required_scopes.data or ()),
            pool_participation=bool(self.pool_participation.data),
        )

    def load(self, terms: ProductTerms) -> None:
        def wan(value: Decimal | None) -> Decimal | None:
            return None if value is None else value / TEN_THOUSAND

        self.name.data = terms.name
        self.product_type.data = terms.product_type.value
        self.description.data = terms.description
        self.amount_min_wan.data = wan(terms.amount_min)
        self.amount_max_wan.data = wan(terms.amount_max)
        self.term_min_months.data = terms.term_min_months
        self.term_max_months.data = terms.term_max_months
        self.rate_min.data = terms.rate_min
        self.rate_max.data = terms.rate_max
        self.repayment_method.data = terms.repayment_method.value
        self.upfront_fee_pct.data = terms.upfront_fee_pct
        self.response_days.data = terms.response_days
        self.min_grade.data = terms.min_grade or ""
        self.public_credit_classes.data = list(terms.public_credit_classes)
        self.min_years_operating.data = terms.min_years_operating
        self.min_annual_sales_wan.data = wan(terms.min_annual_sales)
        self.min_tax_months.data = terms.min_tax_months
        self.min_social_months.data = terms.min_social_months
        self.industries_allowed.data = ", ".join(terms.industries_allowed)
        self.industries_excluded.data = ", ".join(terms.industries_excluded)
        self.regions_allowed.data = ", ".join(terms.regions_allowed)
        self.regions_excluded.data = ", ".join(terms.regions_excluded)
        self.size_classes.data = list(terms.size_classes)
        self.required_scopes.data = list(terms.required_scopes)
        self.pool_participation.data = terms.pool_participation
