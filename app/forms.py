"""Forms shared by several blueprints."""

from flask_wtf import FlaskForm


class ConfirmForm(FlaskForm):
    """A CSRF-protected POST with no fields (revoke, enable/disable buttons)."""
