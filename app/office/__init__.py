from flask import Blueprint

from app.auth.access import restrict_blueprint
from models import OrgKind

bp = Blueprint("office", __name__)
restrict_blueprint(bp, OrgKind.OFFICE)

from app.office import ingestion_routes, pool_routes, routes  # noqa: E402, F401
