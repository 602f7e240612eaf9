"""Account services called directly, as the CLI and API will call them."""

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services import accounts
from models import Organization, OrgKind, Role, User


def test_bank_admin_may_add_users_to_own_bank_only(app_ctx):
    bank_a = accounts.create_organization(None, OrgKind.BANK, "A 银行")
    bank_b = accounts.create_organization(None, OrgKind.BANK, "B 银行")
    admin, _ = accounts.create_user(
        None, bank_a, "a@bank.example.com", "A", Role.ADMIN, "long enough pass 1"
    )
    officer, pw = accounts.create_user(admin, bank_a, "o@bank.example.com", "O", Role.OFFICER)
    assert officer.organization_id == bank_a.id and pw
    with pytest.raises(accounts.PermissionRefused):
        accounts.create_user(admin, bank_b, "x@bank.example.com", "X", Role.OFFICER)
    with pytest.raises(accounts.PermissionRefused):
        accounts.create_user(officer, bank_a, "y@bank.example.com", "Y", Role.OFFICER)


def test_only_office_admin_creates_organizations(app_ctx):
    bank = accounts.create_organization(None, OrgKind.BANK, "C 银行")
    admin, _ = accounts.create_user(
        None, bank, "c@bank.example.com", "C", Role.ADMIN, "long enough pass 1"
    )
    with pytest.raises(accounts.PermissionRefused):
        accounts.create_organization(admin, OrgKind.BANK, "D 银行")
    with pytest.raises(accounts.AccountError, match="register themselves"):
        accounts.create_organization(None, OrgKind.ENTERPRISE, "企业")


@pytest.mark.parametrize(
    "password,problem",
    [("short", "at least 12"), ("aaaaaaaaaaaaaaa", "too easy"), ("x" * 129, "at most 128")],
)
def test_password_rules(app_ctx, password, problem):
    assert problem in str(accounts.password_problem(password))
    with pytest.raises(accounts.AccountError):
        accounts.hash_password(password)


def test_duplicate_email_is_refused_case_insensitively(app_ctx):
    bank = accounts.create_organization(None, OrgKind.BANK, "E 银行")
    accounts.create_user(None, bank, "Same@Bank.example.com", "S", Role.ADMIN, "long enough pass 1")
    with pytest.raises(accounts.AccountError, match="already has an account") as err:
        accounts.create_user(
            None, bank, "same@bank.example.COM", "S2", Role.ADMIN, "long enough pass 1"
        )
    assert err.value.field == "email"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1


def test_disabled_organization_cannot_log_in(app_ctx):
    bank = accounts.create_organization(None, OrgKind.BANK, "F 银行")
    accounts.create_user(None, bank, "f@bank.example.com", "F", Role.ADMIN, "long enough pass 1")
    db.session.get(Organization, bank.id).is_active = False
    with pytest.raises(accounts.LoginRefused, match="disabled"):
        accounts.authenticate("f@bank.example.com", "long enough pass 1")


def test_an_api_clients_service_user_cannot_be_enabled_or_reset_by_hand(app_ctx, factory):
    from app.api import clients
    from app.services import accounts as accounts_service
    from app.services.accounts import PermissionRefused
    from models import Organization, OrgKind, User

    admin = db.session.get(User, factory.user(OrgKind.BANK).user_id)
    bank = db.session.get(Organization, admin.organization_id)
    issued = clients.create_bank_client(admin, bank, "信贷系统", ["profiles:read"])
    service_user = issued.client.service_user
    assert service_user is not None and not service_user.is_active
    for change in (
        lambda: accounts_service.set_user_active(admin, service_user, True),
        lambda: accounts_service.reset_password(admin, service_user),
    ):
        with pytest.raises(PermissionRefused):
            change()
    assert not service_user.is_active
