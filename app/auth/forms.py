"""Login, registration and password forms. Every field error is shown next to its field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    EmailField,
    IntegerField,
    PasswordField,
    StringField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from app.services import workdays
from app.services.accounts import password_problem
from models.codes import (
    CodeError,
    normalize_id_number,
    normalize_industry_code,
    normalize_mobile,
    normalize_region_code,
    normalize_uscc,
)
from models.sme_size import needs_total_assets

TEN_THOUSAND = Decimal(10_000)


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])


def _normalizing(fn: Any) -> Any:
    """A WTForms validator that replaces the field's data with ``fn``'s canonical form."""

    def validator(_form: Any, field: Any) -> None:
        try:
            field.data = fn(field.data or "")
        except CodeError as exc:
            raise ValidationError(str(exc)) from exc

    return validator


def _strong_password(_form: Any, field: Any) -> None:
    problem = password_problem(field.data or "")
    if problem is not None:
        raise ValidationError(str(problem))


class RegistrationForm(FlaskForm):
    uscc = StringField(
        _l("Unified social credit code"),
        validators=[DataRequired(), _normalizing(normalize_uscc)],
        description=_l("18 characters, on the business licence."),
    )
    name = StringField(_l("Enterprise name"), validators=[DataRequired(), Length(max=200)])
    legal_representative = StringField(
        _l("Legal representative"), validators=[DataRequired(), Length(max=100)]
    )
    legal_rep_id_number = StringField(
        _l("Legal representative's ID card number"),
        validators=[Optional(), _normalizing(normalize_id_number)],
        description=_l("Optional. 18 characters; stored encrypted and shown masked."),
    )
    legal_rep_phone = StringField(
        _l("Legal representative's mobile phone"),
        validators=[Optional(), _normalizing(normalize_mobile)],
        description=_l("Optional. 11 digits; stored encrypted and shown masked."),
    )
    founded_on = DateField(_l("Founded on"), validators=[DataRequired()])
    region_code = StringField(
        _l("Administrative division code"),
        validators=[DataRequired(), _normalizing(normalize_region_code)],
        description=_l("6 digits (GB/T 2260), e.g. 350102."),
    )
    industry_code = StringField(
        _l("Industry code"),
        validators=[DataRequired(), _normalizing(normalize_industry_code)],
        description=_l("GB/T 4754-2017 section and division, e.g. C13."),
    )
    employees = IntegerField(
        _l("Employees"), validators=[InputRequired(), NumberRange(min=0, max=10_000_000)]
    )
    annual_revenue_wan = DecimalField(
        _l("Annual revenue (10,000 CNY)"),
        places=2,
        validators=[InputRequired(), NumberRange(min=0, max=100_000_000)],
    )
    total_assets_wan = DecimalField(
        _l("Total assets (10,000 CNY)"),
        places=2,
        validators=[Optional(), NumberRange(min=0, max=100_000_000)],
        description=_l("Needed for construction, real estate, leasing and business services."),
    )
    user_name = StringField(_l("Your name"), validators=[DataRequired(), Length(max=100)])
    email = EmailField(
        _l("E-mail"),
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
    )
    password = PasswordField(_l("Password"), validators=[DataRequired(), _strong_password])
    confirm = PasswordField(
        _l("Repeat password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )
    accept_terms = BooleanField(
        _l("I act for this enterprise and accept the platform's terms of use."),
        validators=[DataRequired(message=_l("Please confirm to continue."))],
    )

    def validate_founded_on(self, field: Any) -> None:
        if field.data and field.data > workdays.local_date():
            raise ValidationError(_l("The founding date cannot be in the future."))

    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators)
        # Checked after the fields: ``Optional()`` ends the field's own validator chain when
        # it is empty, and whether it may be empty depends on the industry.
        field = self.total_assets_wan
        industry = self.industry_code
        if (
            field.data is None
            and not field.errors
            and industry.data
            and not industry.errors
            and needs_total_assets(industry.data)
        ):
            field.errors = [
                *field.errors,
                str(_l("Total assets are needed to classify an enterprise in this industry.")),
            ]
            valid = False
        return valid

    @property
    def annual_revenue(self) -> Decimal:
        return Decimal(self.annual_revenue_wan.data) * TEN_THOUSAND

    @property
    def total_assets(self) -> Decimal | None:
        data = self.total_assets_wan.data
        return None if data is None else Decimal(data) * TEN_THOUSAND


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(_l("Current password"), validators=[DataRequired()])
    password = PasswordField(_l("New password"), validators=[DataRequired(), _strong_password])
    confirm = PasswordField(
        _l("Repeat new password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )


class TwoFactorForm(FlaskForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(), Length(max=20)],
        description=_l("The 6-digit code from your authenticator app, or a recovery code."),
    )


class EnrolForm(FlaskForm):
    code = StringField(
        _l("Code from your app"),
        validators=[DataRequired(), Length(max=10)],
        description=_l("After adding the account, enter the 6-digit code it shows."),
    )


class ReauthForm(FlaskForm):
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])
    code = StringField(
        _l("Two-factor code"),
        validators=[Optional(), Length(max=20)],
        description=_l("The 6-digit code from your authenticator app, or a recovery code."),
    )
