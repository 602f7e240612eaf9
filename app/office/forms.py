from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length

from models import Role


class NewBankForm(FlaskForm):
    name = StringField(_l("Bank name"), validators=[DataRequired(), Length(max=200)])
    admin_name = StringField(
        _l("Administrator's name"), validators=[DataRequired(), Length(max=100)]
    )
    admin_email = EmailField(
        _l("Administrator's e-mail"),
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
    )


class NewUserForm(FlaskForm):
    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    email = EmailField(
        _l("E-mail"),
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
    )
    role = SelectField(
        _l("Role"),
        choices=[
            SelectChoice(Role.ADMIN.value, _l("Administrator")),
            SelectChoice(Role.OFFICER.value, _l("Officer")),
            SelectChoice(Role.VIEWER.value, _l("Viewer")),
        ],
        default=Role.OFFICER.value,
    )


class RoleForm(FlaskForm):
    role = SelectField(
        _l("Role"),
        choices=[
            SelectChoice(Role.ADMIN.value, _l("Administrator")),
            SelectChoice(Role.OFFICER.value, _l("Officer")),
            SelectChoice(Role.VIEWER.value, _l("Viewer")),
        ],
    )
