from flask import Blueprint

from app.auth.access import restrict_blueprint
from models import OrgKind

bp = Blueprint("office", __name__)
restrict_blueprint(bp, OrgKind.OFFICE)

from app.office import (  # noqa: E402, F401
    application_routes,
    ingestion_routes,
    policy_routes,
    routes,
)
