"""The authorization (consent) wizard."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired

from app.forms import MultiCheckboxField
from app.services.authorization import SCOPE_LABELS

ALL_BANKS = "all"


class GrantForm(FlaskForm):
    kind = RadioField(
        _l("What do you authorize?"),
        choices=[
            SelectChoice(
                "collection", _l("Let the platform collect my records from the providers")
            ),
            SelectChoice("sharing", _l("Let a bank see my credit profile")),
        ],
        default="collection",
        validators=[InputRequired()],
    )
    scopes = MultiCheckboxField(
        _l("Which data"),
        choices=[SelectChoice(key, label) for key, label in SCOPE_LABELS.items()],
        validators=[DataRequired(message=_l("Choose at least one kind of data."))],
    )
    purpose = RadioField(
        _l("For what"),
        choices=[
            SelectChoice("financing", _l("Financing: reviewing my applications")),
            SelectChoice(
                "post_loan_monitoring",
                _l("Post-loan monitoring by a bank that has lent to me (ends with the loan)"),
            ),
        ],
        default="financing",
    )
    grantee = SelectField(_l("Which bank"), choices=[], validate_choice=False)
    include_records = BooleanField(
        _l("Also show the bank the detail records, not only the profile")
    )
    data_months = SelectField(
        _l("Months of history"),
        choices=[SelectChoice("12", "12"), SelectChoice("24", "24"), SelectChoice("36", "36")],
        default="24",
    )
    valid_days = SelectField(
        _l("Valid for"),
        choices=[
            SelectChoice("30", _l("30 days")),
            SelectChoice("90", _l("90 days")),
            SelectChoice("180", _l("180 days")),
            SelectChoice("365", _l("one year")),
        ],
        default="365",
    )
    data_life_days = SelectField(
        _l("The data may be kept for"),
        choices=[
            SelectChoice("90", _l("90 days")),
            SelectChoice("180", _l("180 days")),
            SelectChoice("365", _l("one year")),
        ],
        default="365",
    )
    fetch_frequency = RadioField(
        _l("How often"),
        choices=[
            SelectChoice("monthly", _l("Every month while the authorization lasts")),
            SelectChoice("one_time", _l("Once")),
        ],
        default="monthly",
    )
    confirm = BooleanField(
        _l("I have read the authorization text and agree to it."),
        validators=[DataRequired(message=_l("Please confirm to continue."))],
    )

    def set_banks(self, banks: list[Any]) -> None:
        self.grantee.choices = [SelectChoice(ALL_BANKS, _l("Every bank on the platform"))] + [
            SelectChoice(str(b.id), b.name) for b in banks
        ]
