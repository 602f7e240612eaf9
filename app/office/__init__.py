from flask import Blueprint

from app.auth.access import restrict_blueprint
from models import OrgKind

bp = Blueprint("office", __name__)
restrict_blueprint(bp, OrgKind.OFFICE)

from app.office import routes  # noqa: E402, F401
from app.office import ingestion_routes  # noqa: E402, F401
