from flask import Blueprint

from app.auth.access import restrict_blueprint
from models import OrgKind

bp = Blueprint("office", __name__)
restrict_blueprint(bp, OrgKind.OFFICE)

from app.office import (  # noqa: E402, F401
    application_routes,
    audit_routes,
    dashboard_routes,
    ingestion_routes,
    model_routes,
    objection_routes,
    policy_routes,
    pool_routes,
    provider_routes,
    routes,
    user_routes,
)
