"""The office's support-policy form: benefit terms, then the products' eligibility rules.

The rule fields are the bank product form's own (the same unbound fields, so the same
labels, choices and parsing); only the benefit terms and loan conditions are new here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, DecimalField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from app.bank.forms import TEN_THOUSAND, TYPE_LABELS, ProductForm, _codes
from app.forms import MultiCheckboxField
from app.services.policies import KIND_LABELS, PolicyTerms
from app.services.products import grades
from models import PolicyKind


class PolicyForm(FlaskForm):
    name = StringField(_l("Policy name"), validators=[DataRequired(), Length(max=120)])
    kind = SelectField(
        _l("Kind"), choices=[SelectChoice(k.value, label) for k, label in KIND_LABELS.items()]
    )
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)])
    basis = StringField(
        _l("Policy basis"),
        description=_l("The document and item it implements"),
        validators=[Optional(), Length(max=300)],
    )
    subsidy_rate_pp = DecimalField(
        _l("Subsidy in percentage points of the loan rate"), places=3, validators=[Optional()]
    )
    share_pct = DecimalField(
        _l("Share (percent)"),
        places=3,
        description=_l(
            "Of the interest (interest subsidy), of the guarantee fee paid, or of the principal "
            "(first-loan reward)"
        ),
        validators=[Optional()],
    )
    fixed_amount = DecimalField(_l("Fixed reward (CNY)"), places=2, validators=[Optional()])
    annual_cap = DecimalField(
        _l("Cap per enterprise per year (CNY)"),
        places=2,
        description=_l("Empty = no cap"),
        validators=[Optional()],
    )
    period_start = DateField(_l("Loans disbursed from"), validators=[InputRequired()])
    period_end = DateField(_l("Loans disbursed until"), validators=[InputRequired()])
    total_budget_wan = DecimalField(
        _l("Total budget (10,000 CNY)"), places=2, validators=[InputRequired()]
    )
    first_loan_only = BooleanField(_l("First loans (首贷) only"))
    product_types = MultiCheckboxField(
        _l("Loan types that qualify (none ticked = all)"),
        choices=[SelectChoice(t.value, label) for t, label in TYPE_LABELS.items()],
    )
    # The products' rule fields, as they are.
    min_grade = ProductForm.min_grade
    public_credit_classes = ProductForm.public_credit_classes
    min_years_operating = ProductForm.min_years_operating
    min_annual_sales_wan = ProductForm.min_annual_sales_wan
    min_tax_months = ProductForm.min_tax_months
    min_social_months = ProductForm.min_social_months
    industries_allowed = ProductForm.industries_allowed
    industries_excluded = ProductForm.industries_excluded
    regions_allowed = ProductForm.regions_allowed
    regions_excluded = ProductForm.regions_excluded
    size_classes = ProductForm.size_classes
    required_scopes = ProductForm.required_scopes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_grade.choices = [SelectChoice("", _l("No minimum"))] + [
            SelectChoice(g, g) for g in grades()
        ]

    def terms(self) -> PolicyTerms:
        def dec(field: Any, scale: Decimal = Decimal(1)) -> Decimal | None:
            return None if field.data is None else Decimal(field.data) * scale

        return PolicyTerms(
            name=self.name.data or "",
            kind=PolicyKind(self.kind.data),
            description=self.description.data or "",
            basis=self.basis.data or "",
            subsidy_rate_pp=dec(self.subsidy_rate_pp),
            share_pct=dec(self.share_pct),
            fixed_amount=dec(self.fixed_amount),
            annual_cap=dec(self.annual_cap),
            period_start=self.period_start.data,
            period_end=self.period_end.data,
            total_budget=dec(self.total_budget_wan, TEN_THOUSAND) or Decimal(0),
            first_loan_only=bool(self.first_loan_only.data),
            product_types=tuple(self.product_types.data or ()),
            min_grade=self.min_grade.data or None,
            public_credit_classes=tuple(self.public_credit_classes.data or ()),
            min_years_operating=dec(self.min_years_operating),
            min_annual_sales=dec(self.min_annual_sales_wan, TEN_THOUSAND),
            min_tax_months=self.min_tax_months.data,
            min_social_months=self.min_social_months.data,
            industries_allowed=_codes(self.industries_allowed.data),
            industries_excluded=_codes(self.industries_excluded.data),
            regions_allowed=_codes(self.regions_allowed.data),
            regions_excluded=_codes(self.regions_excluded.data),
            size_classes=tuple(self.size_classes.data or ()),
            required_scopes=tuple(self.required_scopes.data or ()),
        )

    def load(self, terms: PolicyTerms) -> None:
        self.name.data = terms.name
        self.kind.data = terms.kind.value
        self.description.data = terms.description
        self.basis.data = terms.basis
        self.subsidy_rate_pp.data = terms.subsidy_rate_pp
        self.share_pct.data = terms.share_pct
        self.fixed_amount.data = terms.fixed_amount
        self.annual_cap.data = terms.annual_cap
        self.period_start.data = terms.period_start
        self.period_end.data = terms.period_end
        self.total_budget_wan.data = terms.total_budget / TEN_THOUSAND
        self.first_loan_only.data = terms.first_loan_only
        self.product_types.data = list(terms.product_types)
        self.min_grade.data = terms.min_grade or ""
        self.public_credit_classes.data = list(terms.public_credit_classes)
        self.min_years_operating.data = terms.min_years_operating
        self.min_annual_sales_wan.data = (
            None if terms.min_annual_sales is None else terms.min_annual_sales / TEN_THOUSAND
        )
        self.min_tax_months.data = terms.min_tax_months
        self.min_social_months.data = terms.min_social_months
        self.industries_allowed.data = ", ".join(terms.industries_allowed)
        self.industries_excluded.data = ", ".join(terms.industries_excluded)
        self.regions_allowed.data = ", ".join(terms.regions_allowed)
        self.regions_excluded.data = ", ".join(terms.regions_excluded)
        self.size_classes.data = list(terms.size_classes)
        self.required_scopes.data = list(terms.required_scopes)


class DecisionForm(FlaskForm):
    amount = DecimalField(_l("Amount approved (CNY)"), places=2, validators=[Optional()])
    reason = TextAreaField(
        _l("Reason (required to reject)"), validators=[Optional(), Length(max=1000)]
    )
