"""The office's ingestion pages: batches, CSV upload, rejected rows.

Views only parse and authorize; :mod:`app.services.ingestion` does the work. An uploaded
file is read whole (up to ``INGESTION_MAX_UPLOAD_BYTES``), decoded as UTF-8 (a BOM is
dropped) or GBK, and its header checked before anything is written. Its idempotency key is
the SHA-256 of source and bytes, so uploading the same file again changes nothing.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.errors import render_error
from app.extensions import db
from app.office import bp
from app.office.ingestion_forms import UploadForm
from app.services import ingestion
from models import Role
from models.ingestion import IngestionBatch

DEFAULT_MAX_UPLOAD = 8 * 1024 * 1024
BATCHES_PER_PAGE = 50
REJECTIONS_PER_PAGE = 100


class UploadRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _size(limit: int) -> str:
    if limit >= 1024 * 1024:
        return f"{limit / (1024 * 1024):g} MB"
    return f"{limit / 1024:g} KB"


def _page() -> int:
    return max(request.args.get("page", 1, type=int) or 1, 1)


def decode_upload(data: bytes) -> tuple[str, str]:
    """The text of an uploaded CSV and the encoding it was read with.

    UTF-8 (a BOM is dropped) is tried first, then GBK (GB 18030, what Excel on a Chinese
    Windows writes). UTF-16 and anything binary are refused with a message saying what to do.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data:
        raise UploadRefused(
            _(
                "The file is not plain text in UTF-8 or GBK (UTF-16 or binary); "
                "save it as CSV UTF-8."
            )
        )
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "GBK"
    except UnicodeDecodeError:
        raise UploadRefused(
            _("The file is neither UTF-8 nor GBK text; save it as CSV UTF-8.")
        ) from None


def _read_upload(form: UploadForm) -> tuple[bytes, str]:
    limit = int(current_app.config.get("INGESTION_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD))
    data = form.file.data.stream.read(limit + 1)
    if len(data) > limit:
        raise OverflowError(limit)
    return data, form.file.data.filename or "upload.csv"


def _ingest_upload(form: UploadForm) -> IngestionBatch:
    data, filename = _read_upload(form)
    if not data.strip():
        raise UploadRefused(_("The file is empty."))
    text, encoding = decode_upload(data)
    source = form.source.data
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise UploadRefused(_("The file is not a valid CSV file: %(e)s.", e=str(exc))) from None
    reader.fieldnames = header
    missing = ingestion.missing_columns(source, header)
    if missing:
        raise UploadRefused(
            _(
                "The file lacks required columns: %(cols)s. Nothing was stored.",
                cols=", ".join(missing),
            )
        )
    key = "upload-" + hashlib.sha256(source.encode() + b"\0" + data).hexdigest()
    try:
        batch = ingestion.ingest_rows(
            source,
            reader,
            provider=form.provider.data,
            idempotency_key=key,
            actor=current_user._get_current_object(),
            filename=filename[:255],
            first_line=2,
        )
    except csv.Error as exc:
        db.session.rollback()
        raise UploadRefused(
            _("The file is not a valid CSV file: %(e)s. Nothing was stored.", e=str(exc))
        ) from None
    if encoding != "UTF-8":
        flash(_("The file was read as GBK."), "info")
    return batch


@bp.route("/ingestion", methods=["GET", "POST"])
def ingestion_batches() -> Any:
    form = UploadForm()
    if request.method == "POST":
        if current_user.role not in (Role.ADMIN, Role.OFFICER):
            abort(403)
        if form.validate_on_submit():
            try:
                batch = _ingest_upload(form)
            except OverflowError as exc:
                db.session.rollback()
                return render_error(
                    413,
                    _(
                        "The file is larger than %(limit)s; split it into smaller files. "
                        "Nothing was stored.",
                        limit=_size(int(exc.args[0])),
                    ),
                )
            except UploadRefused as exc:
                db.session.rollback()
                form.file.errors = [*form.file.errors, exc.message]
            except ingestion.IngestionError as exc:
                db.session.rollback()
                target = form.provider if isinstance(exc, ingestion.BadProvider) else form.file
                target.errors = [*target.errors, str(exc.message)]
            else:
                db.session.commit()
                flash(
                    _(
                        "Batch %(id)d: %(stored)d stored, %(dup)d duplicates, %(rej)d rejected.",
                        id=batch.id,
                        stored=batch.stored,
                        dup=batch.duplicates,
                        rej=batch.rejected,
                    ),
                    "success",
                )
                return redirect(url_for("office.ingestion_batch", batch_id=batch.id))
    page = _page()
    total = ingestion.batch_count()
    return render_template(
        "office/ingestion.html",
        form=form,
        batches=ingestion.batches(BATCHES_PER_PAGE, (page - 1) * BATCHES_PER_PAGE),
        page=page,
        pages=max((total + BATCHES_PER_PAGE - 1) // BATCHES_PER_PAGE, 1),
        labels=ingestion.SOURCE_LABELS,
        can_upload=current_user.role in (Role.ADMIN, Role.OFFICER),
    ), (422 if form.errors else 200)


@bp.get("/ingestion/<int:batch_id>")
def ingestion_batch(batch_id: int) -> Any:
    batch = db.session.get(IngestionBatch, batch_id)
    if batch is None:
        abort(404)
    page = _page()
    total = ingestion.rejected_count(batch)
    return render_template(
        "office/ingestion_batch.html",
        batch=batch,
        label=ingestion.SOURCE_LABELS.get(batch.source, batch.source),
        rejections=ingestion.rejected_rows(
            batch, limit=REJECTIONS_PER_PAGE, offset=(page - 1) * REJECTIONS_PER_PAGE
        ),
        messages=ingestion.REJECTION_MESSAGES,
        page=page,
        pages=max((total + REJECTIONS_PER_PAGE - 1) // REJECTIONS_PER_PAGE, 1),
        total=total,
    )
