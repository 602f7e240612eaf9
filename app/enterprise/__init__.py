from flask import Blueprint

from app.auth.access import restrict_blueprint
from models import OrgKind

bp = Blueprint("enterprise", __name__)
restrict_blueprint(bp, OrgKind.ENTERPRISE)

from app.enterprise import (  # noqa: E402, F401
    application_routes,
    contact_routes,
    match_routes,
    need_routes,
    objection_routes,
    policy_routes,
    profile_routes,
    routes,
)
