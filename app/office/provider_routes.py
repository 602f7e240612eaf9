"""Data providers' OAuth2 clients, managed by the office: list, create (the secret is shown
once), rotate the secret (the old one stops working), disable and enable. Audited in
:mod:`app.api.clients`; office admins only act, every office user may look."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from app.api import clients
from app.api.clients import IssuedCredentials
from app.auth.access import role_required
from app.extensions import db
from app.forms import ConfirmForm, MultiCheckboxField, show_error
from app.office import bp
from app.security import reauth_required
from app.services.accounts import AccountError
from models import Organization, OrgKind, Role
from models.provider import INGEST_SCOPE_PREFIX, PROVIDER_SOURCES, ProviderClient


class NewProviderForm(FlaskForm):
    name = StringField(_l("Provider"), validators=[DataRequired(), Length(max=100)])
    source = SelectField(
        _l("May push"),
        choices=[SelectChoice(s, INGEST_SCOPE_PREFIX + s) for s in PROVIDER_SOURCES],
        default=PROVIDER_SOURCES[0],
    )


class NewBankClientForm(FlaskForm):
    """A bank's loan system as an API client: which bank, what it may do, and optionally
    the public JWK it signs ``private_key_jwt`` assertions with."""

    client_name = StringField(_l("Client"), validators=[DataRequired(), Length(max=100)])
    bank = SelectField(_l("Bank"), coerce=int, validate_choice=False)
    scopes = MultiCheckboxField(
        _l("May"), choices=[SelectChoice(s, s) for s in sorted(clients.BANK_SCOPES)]
    )
    jwk = TextAreaField(
        _l("Public JWK for private_key_jwt (optional; without it the client uses its secret)"),
        validators=[Optional(), Length(max=5000)],
    )

    def set_banks(self) -> None:
        banks = db.session.scalars(
            sa.select(Organization)
            .where(Organization.kind == OrgKind.BANK, Organization.is_active.is_(True))
            .order_by(Organization.name)
        )
        self.bank.choices = [SelectChoice(b.id, b.name) for b in banks]


def _page(
    form: NewProviderForm,
    issued: IssuedCredentials | None = None,
    status: int = 200,
    bank_form: NewBankClientForm | None = None,
) -> Any:
    if bank_form is None:
        bank_form = NewBankClientForm(formdata=None)
    bank_form.set_banks()
    return render_template(
        "office/providers.html",
        providers=clients.clients(),
        form=form,
        bank_form=bank_form,
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


@bp.post("/providers/banks")
@role_required(Role.ADMIN)
@reauth_required()
def bank_client_create() -> Any:
    bank_form = NewBankClientForm()
    bank_form.set_banks()
    blank = NewProviderForm(formdata=None)
    if not bank_form.validate_on_submit():
        return _page(blank, status=422, bank_form=bank_form)
    bank = db.session.get(Organization, bank_form.bank.data)
    try:
        if bank is None:
            raise AccountError(_l("Choose an active bank."), "bank")
        key = json.loads(bank_form.jwk.data) if (bank_form.jwk.data or "").strip() else None
        issued = clients.create_bank_client(
            current_user, bank, bank_form.client_name.data or "", list(bank_form.scopes.data or []),
            key,
        )  # fmt: skip
    except json.JSONDecodeError:
        bank_form.jwk.errors = [*bank_form.jwk.errors, _("This is not JSON.")]
        return _page(blank, status=422, bank_form=bank_form)
    except AccountError as exc:
        db.session.rollback()
        name = {"name": "client_name"}.get(exc.field or "", exc.field)
        if not show_error(bank_form, name, exc.message):
            show_error(bank_form, "client_name", exc.message)
        return _page(blank, status=422, bank_form=bank_form)
    db.session.commit()
    return _page(blank, issued)


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
