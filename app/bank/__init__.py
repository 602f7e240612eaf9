from flask import Blueprint

from app.auth.access import restrict_blueprint
from models import OrgKind

bp = Blueprint("bank", __name__)
restrict_blueprint(bp, OrgKind.BANK)

from app.bank import (  # noqa: E402, F401
    application_routes,
    claim_routes,
    need_routes,
    routes,
    user_routes,
)
