"""The office's CSV upload form."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from app.services.ingestion import SOURCE_LABELS


class UploadForm(FlaskForm):
    source = SelectField(
        _l("Kind of records"),
        choices=[SelectChoice(name, label) for name, label in SOURCE_LABELS.items()],
    )
    provider = StringField(
        _l("Provider"),
        validators=[DataRequired(), Length(max=100)],
        description=_l("The unit that delivered the file, e.g. the city tax bureau."),
    )
    file = FileField(
        _l("CSV file"),
        validators=[FileRequired(_l("Choose a CSV file."))],
        description=_l("UTF-8 (with or without BOM) or GBK; the first line names the columns."),
    )
