"""SQLAlchemy 2 typed models, one module per aggregate.

Importing this package registers every table on ``Base.metadata`` (Alembic's autogenerate
and ``db.create_all`` rely on it).
"""

from models.base import Base, db, utcnow
from models.enterprise import Enterprise, SizeClass
from models.organization import Organization, OrgKind
from models.user import Role, User, UserSession

__all__ = [
    "Base",
    "Enterprise",
    "OrgKind",
    "Organization",
    "Role",
    "SizeClass",
    "User",
    "UserSession",
    "db",
    "utcnow",
]
