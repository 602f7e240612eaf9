"""Forms and fields shared by several blueprints."""

from flask_wtf import FlaskForm
from wtforms import SelectMultipleField
from wtforms.widgets import CheckboxInput, ListWidget


class ConfirmForm(FlaskForm):
    """A CSRF-protected POST with no fields (revoke, enable/disable buttons)."""


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice shown as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def show_error(form: FlaskForm, field_name: str | None, message: object) -> bool:
    """Put a service's error next to the form field it names (``amount`` also finds the
    form's ``amount_wan``). Returns False when the form has no such field: the caller shows
    the message another way (a flash)."""
    for name in (field_name or "", f"{field_name}_wan"):
        field = getattr(form, name, None) if name else None
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, str(message)]
            return True
    return False
