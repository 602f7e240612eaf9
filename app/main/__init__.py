from flask import Blueprint

bp = Blueprint("main", __name__)

from app.main import notification_routes, routes  # noqa: E402, F401
