"""Data providers' OAuth2 clients, managed by the office: list, create (the secret is shown
once), rotate the secret (the old one stops working), disable and enable. Audited in
:mod:`app.api.clients`; office admins only act, every office user may look."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from app.api import clients
from app.api.clients import IssuedCredentials
from app.auth.access import role_required
from app.extensions import db
from app.forms import ConfirmForm
from app.office import bp
from app.security import reauth_required
from app.services.accounts import AccountError
from models import Role
from models.provider import INGEST_SCOPE_PREFIX, PROVIDER_SOURCES, ProviderClient


class NewProviderForm(FlaskForm):
    name = StringField(_l("Provider"), validators=[DataRequired(), Length(max=100)])
    source = SelectField(
        _l("May push"),
        choices=[SelectChoice(s, INGEST_SCOPE_PREFIX + s) for s in PROVIDER_SOURCES],
        default=PROVIDER_SOURCES[0],
    )


def _page(form: NewProviderForm, issued: IssuedCredentials | None = None, status: int = 200) -> Any:
    return render_template(
        "office/providers.html",
        providers=clients.clients(),
        form=form,
        confirm=ConfirmForm(),
        issued=issued,
    ), status


@bp.get("/providers")
def provider_list() -> Any:
    return _page(NewProviderForm(formdata=None))


@bp.post("/providers")
@role_required(Role.ADMIN)
@reauth_required()
def provider_create() -> Any:
    form = NewProviderForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    try:
        issued = clients.create_client(current_user, form.name.data or "", form.source.data or "")
    except AccountError as exc:
        db.session.rollback()
        target = form.source if exc.field == "source" else form.name
        target.errors = [*target.errors, str(exc.message)]
        return _page(form, status=422)
    db.session.commit()
    return _page(NewProviderForm(formdata=None), issued)


def _client(client_pk: int) -> ProviderClient:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    client = db.session.get(ProviderClient, client_pk)
    if client is None:
        abort(404)
    return client


@bp.post("/providers/<int:client_pk>/rotate")
@role_required(Role.ADMIN)
@reauth_required()
def provider_rotate(client_pk: int) -> Any:
    issued = clients.rotate_secret(current_user, _client(client_pk))
    db.session.commit()
    return _page(NewProviderForm(formdata=None), issued)


@bp.post("/providers/<int:client_pk>/active/<int:active>")
@role_required(Role.ADMIN)
@reauth_required()
def provider_set_active(client_pk: int, active: int) -> Any:
    client = _client(client_pk)
    clients.set_active(current_user, client, bool(active))
    db.session.commit()
    flash(
        _("%(name)s enabled.", name=client.name)
        if active
        else _("%(name)s disabled; its tokens no longer work.", name=client.name),
        "success",
    )
    return redirect(url_for("office.provider_list"))
