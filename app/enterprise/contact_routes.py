"""Reveal the legal representative's ID number and phone (admins of the enterprise, audited)."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template
from flask_login import current_user

from app.enterprise import bp
from app.extensions import db
from app.forms import ConfirmForm
from app.services import enterprises, personal_data


@bp.post("/legal-representative/reveal")
def legal_rep_reveal() -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    enterprise = enterprises.enterprise_of(current_user)
    try:
        contact = personal_data.reveal(current_user, enterprise)
    except personal_data.PermissionRefused:
        abort(403)
    db.session.commit()
    return render_template("enterprise/_legal_rep.html", contact=contact, revealed=True)
