"""SQLAlchemy 2 typed models, one module per aggregate.

Importing this package registers every table on ``Base.metadata`` (Alembic's autogenerate
and ``db.create_all`` rely on it).
"""

from models import indexes as _indexes  # noqa: F401  (list indexes, issue 8)
from models.application import (
    OPEN_STATUSES,
    ApplicationEvent,
    ApplicationStatus,
    LoanApplication,
)
from models.audit import AuditEvent
from models.authorization import (
    Authorization,
    AuthorizationKind,
    AuthorizationStatus,
    FetchFrequency,
    Purpose,
)
from models.base import Base, db, utcnow
from models.enterprise import Enterprise, SizeClass
from models.ingestion import IngestionBatch, RejectedRow
from models.job import ChunkStatus, Job, JobChunk, JobStatus
from models.loan import Loan, LoanEvent, LoanEventKind, LoanStatus
from models.match import MATCH_INPUTS, MatchEpoch
from models.model_version import ModelKind, ModelStatus, ModelVersion
from models.need import FinancingNeed, NeedStatus
from models.notification import Notification
from models.objection import (
    CreditRepair,
    Objection,
    ObjectionEvidence,
    ObjectionStatus,
    ObjectionTarget,
    RepairStatus,
)
from models.organization import Organization, OrgKind
from models.policy import (
    PolicyApplication,
    PolicyApplicationStatus,
    PolicyKind,
    PolicyStatus,
    SupportPolicy,
)
from models.pool import (
    ClaimStatus,
    CoverageStatus,
    PoolAccount,
    PoolClaim,
    PoolCoverage,
    PoolEntryKind,
    PoolLedgerEntry,
    RiskPool,
)
from models.product import LoanProduct, ProductStatus, ProductType, RepaymentMethod
from models.profile import CreditProfile
from models.provider import IdempotentRequest, ProviderClient, ProviderToken, UsedAssertion
from models.records import RECORD_MODELS
from models.target import KpiTarget
from models.user import RecoveryCode, Role, User, UserSession

__all__ = [
    "MATCH_INPUTS",
    "OPEN_STATUSES",
    "RECORD_MODELS",
    "ApplicationEvent",
    "ApplicationStatus",
    "AuditEvent",
    "Authorization",
    "AuthorizationKind",
    "AuthorizationStatus",
    "Base",
    "ChunkStatus",
    "ClaimStatus",
    "CoverageStatus",
    "CreditProfile",
    "CreditRepair",
    "Enterprise",
    "FetchFrequency",
    "FinancingNeed",
    "IdempotentRequest",
    "IngestionBatch",
    "Job",
    "JobChunk",
    "JobStatus",
    "KpiTarget",
    "Loan",
    "LoanApplication",
    "LoanEvent",
    "LoanEventKind",
    "LoanProduct",
    "LoanStatus",
    "MatchEpoch",
    "ModelKind",
    "ModelStatus",
    "ModelVersion",
    "NeedStatus",
    "Notification",
    "Objection",
    "ObjectionEvidence",
    "ObjectionStatus",
    "ObjectionTarget",
    "OrgKind",
    "Organization",
    "PolicyApplication",
    "PolicyApplicationStatus",
    "PolicyKind",
    "PolicyStatus",
    "PoolAccount",
    "PoolClaim",
    "PoolCoverage",
    "PoolEntryKind",
    "PoolLedgerEntry",
    "ProductStatus",
    "ProductType",
    "ProviderClient",
    "ProviderToken",
    "Purpose",
    "RecoveryCode",
    "RejectedRow",
    "RepairStatus",
    "RepaymentMethod",
    "RiskPool",
    "Role",
    "SizeClass",
    "SupportPolicy",
    "UsedAssertion",
    "User",
    "UserSession",
    "db",
    "utcnow",
]
