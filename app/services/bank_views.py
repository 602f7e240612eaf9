"""What a bank may see of enterprises: its prospect list and a profile, through the policy.

Lists and counts come from the live sharing grants (:func:`authorization.shared_with_bank`,
as a subquery of the prospect list's SELECT); every profile or records view asks the policy
(:func:`authorization.decide_for_view`, the same answers as ``decide``) at that moment, is
counted against the grant and recorded in the audit trail the enterprise reads, before the
page is sent."""

from __future__ import annotations

import datetime as dt
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple, TypeVar

import numpy as np
import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from app.services import (
    audit,
    authorization,
    credit_repair,
    matching,
    objections,
    products,
    profiles,
    workdays,
)
from app.services.matching_engine import EnterpriseFacts, eligibility
from models import (
    Authorization,
    AuthorizationKind,
    CreditProfile,
    Enterprise,
    LoanProduct,
    MatchEpoch,
    Organization,
    User,
    db,
)
from models.base import utcnow
from models.records import RECORD_MODELS

_P, _V = ("period", _l("Period")), ("version", _l("Version"))
_M = ("month", _l("Month"))
RECORD_COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "tax": [_P, ("tax_type", _l("Tax type")), ("amount_paid", _l("Paid")),
            ("declared_sales", _l("Declared sales")), ("late_filing", _l("Filed late")),
            ("arrears", _l("Arrears")), _V],
    "social_insurance": [_M, ("insured_headcount", _l("Insured staff")), ("amount_due", _l("Due")),
                         ("amount_paid", _l("Paid")), ("arrears", _l("Arrears")), _V],
    "utilities": [_M, ("utility", _l("Utility")), ("consumption", _l("Consumption")),
                  ("amount_billed", _l("Billed")), ("amount_paid", _l("Paid")),
                  ("days_overdue", _l("Days overdue")), _V],
    "provident_fund": [_M, ("contributing_employees", _l("Contributing staff")),
                       ("amount", _l("Amount")), ("arrears", _l("Arrears")), _V],
}  # fmt: skip
_RECORD_NAMES = {
    scope: [name for name, _label in columns] for scope, columns in RECORD_COLUMNS.items()
}
# The scopes whose detail records a bank may be shown, in the page's order; each scope's
# records are the record table of the same name.
RECORD_SCOPES = tuple(RECORD_COLUMNS)


# The enterprise columns a prospect list shows and matching reads (not whole records).
_PROSPECT_COLUMNS = (
    Enterprise.id,
    Enterprise.uscc,
    Enterprise.name,
    Enterprise.region_code,
    Enterprise.industry_code,
    Enterprise.size_class,
    Enterprise.founded_on,
)
PROSPECT_CHUNK = 5_000  # enterprises matched at a time (the eligibility matrix stays small)
PROSPECTS_PER_PAGE = 50
T = TypeVar("T")


@dataclass
class Prospect:
    enterprise: Any  # a row: _PROSPECT_COLUMNS, then its collection scopes and profile facts
    matching_products: list[LoanProduct] = field(default_factory=list)
    # The matching products' names as the list shows them: "税易贷、社保贷".
    product_names: str = ""


class ListedProspect(NamedTuple):
    """A prospect as the list's page shows it."""

    enterprise: Any  # a row: id, uscc, name, size_class
    product_names: str  # the bank's products it qualifies for, joined; "" when none


def prospect_rows(
    prospects: Sequence[Prospect | ListedProspect],
    profile_url: Callable[[int], str],
    size_labels: Mapping[str, str],
    none_yet: str,
) -> Markup:
    """The prospect list's table rows: each enterprise's name (a link to ``profile_url(id)``),
    credit code, size (``size_labels``) and the products it qualifies for, or ``none_yet``
    (the template's translated words).

    Built in one pass, every value escaped: through Jinja, attribute by attribute, the
    fifty rows of a page cost about as much as the matching behind them."""
    none = Markup("<small>%s</small>") % none_yet  # a constant; the words escaped by %
    sizes = {size: escape(label) for size, label in size_labels.items()}
    html = []
    for prospect in prospects:
        e = prospect.enterprise
        products = escape(prospect.product_names) if prospect.product_names else none
        html.append(
            f'<tr data-enterprise="{int(e.id)}"><td><a href="{escape(profile_url(e.id))}">'
            f"{escape(e.name)}</a></td><td><code>{escape(e.uscc)}</code></td>"
            f"<td>{sizes[e.size_class.value]}</td><td>{products}</td></tr>"
        )
    return Markup("\n".join(html))  # noqa: S704  # nosec B704  (built of escaped values)


def prospects(actor: User, now: dt.datetime | None = None) -> list[Prospect]:
    """Enterprises that shared with the actor's bank, with the bank's products they match:
    those qualifying for most products first, then by name. Nobody else appears, not even in
    counts.

    A province's bank may have a hundred thousand prospects: one SELECT reads each one's
    columns, collection scopes and latest profile facts (the live sharing grants a subquery
    in it, so no list of ids travels), and they are matched :data:`PROSPECT_CHUNK` at a time
    with the vectorized engine; pages show a slice."""
    now = now or utcnow()
    bank: Organization = actor.organization
    if not authorization.is_active_bank(bank):
        return []
    own_products = products.published_by(bank.id)
    rules = matching.rules_of(own_products) if own_products else None
    rows = db.session.execute(_prospects_select(), {"bank_id": bank.id, "now": now}).all()
    result = [Prospect(row) for row in rows]
    if rules is not None:
        # Prospects qualifying for the same products share one list of them (there are at
        # most as many such lists as subsets of the bank's products, usually a handful).
        lists: dict[tuple[bool, ...], tuple[list[LoanProduct], str]] = {}
        for start in range(0, len(rows), PROSPECT_CHUNK):
            ok = eligibility(prospect_facts(rows[start : start + PROSPECT_CHUNK], now), rules)
            for prospect, flags in zip(
                result[start : start + PROSPECT_CHUNK], map(tuple, ok.tolist()), strict=True
            ):
                found = lists.get(flags)
                if found is None:
                    matched = [p for p, f in zip(own_products, flags, strict=True) if f]
                    found = lists[flags] = (matched, "、".join(p.name for p in matched))
                prospect.matching_products, prospect.product_names = found
    result.sort(key=lambda p: (-len(p.matching_products), p.enterprise.name))
    return result


def prospect_facts(rows: Sequence[Any], now: dt.datetime) -> EnterpriseFacts:
    """The matching facts of prospect rows as the prospect list reads them (with their
    ``collection_scopes`` and latest profile facts, NULL without a profile): what
    ``matching.facts_of`` reads with queries of its own, converted column by column."""
    if not rows:
        return matching.facts_from_columns([], [], [], [], [], [], _NO_PROFILE_FACTS, now)
    columns = dict(zip(rows[0]._fields, zip(*rows, strict=True), strict=True))
    masks = {scopes: matching.scopes_mask(scopes) for scopes in set(columns["collection_scopes"])}
    return matching.facts_from_columns(
        columns["id"],
        columns["founded_on"],
        columns["industry_code"],
        columns["region_code"],
        columns["size_class"],
        [masks[scopes] for scopes in columns["collection_scopes"]],
        {name: columns[name] for name in matching.PROFILE_FACTS},
        now,
    )


_NO_PROFILE_FACTS: dict[str, Sequence[Any]] = {name: [] for name in matching.PROFILE_FACTS}


@cache
def _prospects_select() -> sa.Select[*tuple[Any, ...]]:
    """The prospect list's one SELECT, built once (a page runs it on every request); binds
    ``bank_id`` and ``now``."""
    now: sa.BindParameter[dt.datetime] = sa.bindparam("now")
    return (
        sa.select(
            *_PROSPECT_COLUMNS,
            matching.collection_scopes_column(Enterprise.id, now).label("collection_scopes"),
            *(getattr(CreditProfile, name) for name in matching.PROFILE_FACTS),
            CreditProfile.id.label("profile_id"),
        )
        .outerjoin(CreditProfile, CreditProfile.id == profiles.newest_id_column(Enterprise.id))
        .where(Enterprise.id.in_(authorization.shared_with_bank_select()))
        .order_by(Enterprise.id)
    )


# The prospect list a web process keeps ------------------------------------------------
#
# Matching a bank's every prospect on each request costs in proportion to the prospects (a
# province's bank may have a hundred thousand). The list's page keeps each bank's matched
# list, in the list's order, until the match epoch changes (``models.match``: a row that
# triggers change in every transaction changing a grant, an enterprise's matching columns,
# a profile, a product or a loan) or time alone changes it (a grant starts, ends or its
# revocation takes effect; a new local day adds to the years in operation). The page's
# rows are still read through the live sharing grants on every request.


@dataclass(frozen=True)
class ProspectList:
    """A bank's prospects in the list's order, as matched at ``epoch``."""

    epoch: tuple[int, int]  # match_epoch's (n, stamp) read before the prospects were
    built_at: dt.datetime
    valid_until: dt.datetime  # the next grant start, end or revocation; local midnight
    ids: array[int]  # enterprise ids, in the list's order
    product_set: array[int]  # each prospect's index in product_sets
    product_sets: tuple[str, ...]  # each set of matched products' joined names ("" = none)
    qualified: int  # prospects matching at least one product
    # For the Open API's filters (``GET /profiles``): each set's product ids, and each
    # prospect's region and industry code as an index into the distinct codes.
    product_ids: tuple[tuple[int, ...], ...]
    region: array[int]
    regions: tuple[str, ...]
    industry: array[int]
    industries: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.product_set) == len(self.region) == len(self.industry) == n) or len(
            self.product_ids
        ) != len(self.product_sets):
            raise ValueError("a prospect list's arrays must be as long as its ids")

    def fresh(self, epoch: tuple[int, int] | None, now: dt.datetime) -> bool:
        return epoch == self.epoch and self.built_at <= now < self.valid_until


@dataclass
class ProspectPage:
    prospects: list[ListedProspect]
    total: int
    qualified: int
    page: int
    pages: int


class ProspectLists:
    """The lists a process keeps, at most ``size`` banks' (the least recently shown one is
    dropped first); safe to share among a process's threads. A list takes about 20 bytes a
    prospect."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"PROSPECT_LISTS_KEPT must be 0 or more, not {size}")
        self.size = size
        self._lists: OrderedDict[int, ProspectList] = OrderedDict()
        self._lock = threading.Lock()
        self.built = 0  # lists built by this process (tests read it)

    def get(
        self, bank_id: int, epoch: tuple[int, int] | None, now: dt.datetime
    ) -> ProspectList | None:
        with self._lock:
            listing = self._lists.get(bank_id)
            if listing is None or not listing.fresh(epoch, now):
                return None
            self._lists.move_to_end(bank_id)
            return listing

    def put(self, bank_id: int, listing: ProspectList, keep: bool = True) -> None:
        """Count a list built; keep it unless ``keep`` is false."""
        with self._lock:
            self.built += 1
            if not keep:
                return
            self._lists[bank_id] = listing
            self._lists.move_to_end(bank_id)
            while len(self._lists) > self.size:
                self._lists.popitem(last=False)

    def drop(self, bank_id: int) -> None:
        with self._lock:
            self._lists.pop(bank_id, None)


# Where an application keeps its lists (``app.extensions``); removing it forgets them all.
KEPT_LISTS = "xinyidai.prospect_lists"


def kept_prospect_lists() -> ProspectLists:
    """This application's kept lists (``PROSPECT_LISTS_KEPT`` banks at most)."""
    lists: ProspectLists | None = current_app.extensions.get(KEPT_LISTS)
    if lists is None:
        size = int(current_app.config["PROSPECT_LISTS_KEPT"])
        lists = current_app.extensions.setdefault(KEPT_LISTS, ProspectLists(size))
    return lists


def prospect_page(actor: User, page: int, now: dt.datetime | None = None) -> ProspectPage:
    """Page ``page`` (from 1; past the end: the last) of :func:`prospects`, from the list
    this process keeps for the actor's bank while it is fresh, else matched again and kept.

    The page's enterprises are read with the live sharing grants: were one whose grant
    ended ever named by a kept list without the epoch showing it (it cannot, but consent is
    not left to a cache), the list is matched again at once, and the page and its counts
    come from that."""
    now = now or utcnow()
    if not authorization.is_active_bank(actor.organization):
        return ProspectPage([], 0, 0, 1, 1)
    per_page = PROSPECTS_PER_PAGE

    def window(listing: ProspectList) -> range:
        pages = max(1, -(-len(listing.ids) // per_page))
        first = (min(max(page, 1), pages) - 1) * per_page
        return range(first, min(first + per_page, len(listing.ids)))

    listing, positions, rows = _kept_rows(actor, now, window, _page_select())
    pages = max(1, -(-len(listing.ids) // per_page))
    shown = [
        ListedProspect(rows[listing.ids[k]], listing.product_sets[listing.product_set[k]])
        for k in positions
    ]
    return ProspectPage(shown, len(listing.ids), listing.qualified, min(max(page, 1), pages), pages)


@dataclass(frozen=True)
class ProspectFilter:
    """The Open API's filters of a bank's prospects (``GET /profiles``)."""

    region: str | None = None  # a GB/T 2260 prefix
    industry: str | None = None  # a GB/T 4754 prefix
    eligible_only: bool = False  # only those qualifying for one of the bank's products


@dataclass
class ProspectSlice:
    """A slice of the filtered prospects: each enterprise row (:data:`_PROSPECT_COLUMNS`)
    with the ids of the bank's products it qualifies for, and how many passed the filter."""

    items: list[tuple[Any, tuple[int, ...]]]
    total: int


def prospect_slice(
    actor: User, where: ProspectFilter, start: int, count: int, now: dt.datetime | None = None
) -> ProspectSlice:
    """``count`` of the bank's prospects that pass ``where``, from the ``start``-th (from
    0), in the list's order — from the list kept for :func:`prospect_page`, so a bank's
    system paging through a hundred thousand prospects does not match them all again for
    every page; the slice's enterprises are read through the live sharing grants as the
    list page's are."""
    now = now or utcnow()
    if not authorization.is_active_bank(actor.organization):
        return ProspectSlice([], 0)
    total = 0

    def pick(listing: ProspectList) -> list[int]:
        nonlocal total
        passing = filtered_positions(listing, where)
        total = len(passing)
        return passing[max(start, 0) : max(start, 0) + max(count, 0)].tolist()

    listing, positions, rows = _kept_rows(actor, now, pick, _slice_select())
    items = [(rows[listing.ids[k]], listing.product_ids[listing.product_set[k]]) for k in positions]
    return ProspectSlice(items, total)


def filtered_positions(listing: ProspectList, where: ProspectFilter) -> np.ndarray[Any, Any]:
    """The positions in ``listing`` of the prospects that pass ``where``, in order (an
    array: a slice of it becomes Python ints, not all of a hundred thousand): each filter
    decided once per distinct code or product set, then taken for every prospect."""
    if not where.region and not where.industry and not where.eligible_only:
        return np.arange(len(listing.ids))
    keep = np.ones(len(listing.ids), dtype=bool)
    for prefix, codes, of in (
        (where.region, listing.regions, listing.region),
        (where.industry, listing.industries, listing.industry),
    ):
        if prefix:
            passes = np.array([code.startswith(prefix) for code in codes], dtype=bool)
            keep &= passes[np.frombuffer(of, dtype=f"u{of.itemsize}")]
    if where.eligible_only:
        qualifies = np.array([bool(ids) for ids in listing.product_ids], dtype=bool)
        sets = listing.product_set
        keep &= qualifies[np.frombuffer(sets, dtype=f"u{sets.itemsize}")]
    return np.flatnonzero(keep)


def _kept_rows(
    actor: User,
    now: dt.datetime,
    pick: Callable[[ProspectList], Sequence[int]],
    select: sa.Select[Any],
) -> tuple[ProspectList, Sequence[int], dict[int, Any]]:
    """The actor's bank's prospect list (kept while fresh, else matched again and kept), the
    positions in it ``pick`` chose whose enterprises a live sharing grant allows, and their
    rows by id, read by ``select`` through those grants (it binds ``ids``, ``bank_id``,
    ``now``). Were a kept list to name an enterprise no live grant allows among those
    picked, the list is matched again and picked anew; one off the picked positions is not
    seen here (the counts would include it until the epoch or time renews the list, which
    only a change made with the triggers disabled can delay), but its row is never read."""
    bank: Organization = actor.organization
    lists = kept_prospect_lists()
    for kept_allowed in (True, False):
        epoch, writing = match_epoch()  # first: a change committed after it makes it differ
        kept = lists.get(bank.id, epoch, now) if kept_allowed and not writing else None
        if kept is None:
            listing = _prospect_list(actor, epoch, now)
            lists.put(bank.id, listing, keep=epoch is not None and not writing)
        else:
            listing = kept
        positions = pick(listing)
        ids = [listing.ids[k] for k in positions]
        rows = {
            row.id: row
            for row in db.session.execute(select, {"ids": ids, "bank_id": bank.id, "now": now})
        }
        if kept is None or len(rows) == len(ids):
            break
        # A kept list named an enterprise no live grant allows: matched again now, so that
        # neither its row nor the counts show it.
        lists.drop(bank.id)
    # (A grant ending between a fresh list's matching and this read: its row is left out.)
    return listing, [k for k in positions if listing.ids[k] in rows], rows


def match_epoch() -> tuple[tuple[int, int] | None, bool]:
    """``match_epoch``'s ``(n, stamp)`` (None if its row is missing), and whether this
    transaction has written: PostgreSQL counts a transaction's changes when it commits, so a
    list matched inside one that wrote may hold changes the epoch does not show yet (and
    that a rollback may undo); such a list is neither kept nor taken from the kept ones."""
    row = db.session.execute(_epoch_select(db.session.get_bind().dialect.name)).first()
    if row is None:
        return None, False
    return (int(row.n), int(row.stamp)), bool(row.writing)


@cache
def _epoch_select(dialect: str) -> sa.Select[*tuple[Any, ...]]:
    writing = (
        sa.func.pg_current_xact_id_if_assigned().is_not(None)
        if dialect == "postgresql"
        else sa.false()
    )
    return sa.select(MatchEpoch.n, MatchEpoch.stamp, writing.label("writing")).where(
        MatchEpoch.id == 1
    )


def _prospect_list(actor: User, epoch: tuple[int, int] | None, now: dt.datetime) -> ProspectList:
    everyone = prospects(actor, now)
    # Prospects qualifying for the same products share one list (a handful of sets).
    sets: dict[tuple[int, ...], tuple[int, str]] = {}
    product_set = array("I")
    for p in everyone:
        key = tuple(product.id for product in p.matching_products)
        product_set.append(sets.setdefault(key, (len(sets), p.product_names))[0])
    regions: dict[str, int] = {}
    industries: dict[str, int] = {}
    return ProspectList(
        epoch=epoch or (0, 0),
        built_at=now,
        valid_until=_valid_until(actor.organization_id, now),
        ids=array("q", [p.enterprise.id for p in everyone]),
        product_set=product_set,
        product_sets=tuple(names for _index, names in sets.values()),
        qualified=sum(1 for p in everyone if p.matching_products),
        product_ids=tuple(sets),
        region=array("I", [regions.setdefault(p.enterprise.region_code, len(regions))
                           for p in everyone]),
        regions=tuple(regions),
        industry=array("I", [industries.setdefault(p.enterprise.industry_code, len(industries))
                             for p in everyone]),
        industries=tuple(industries),
    )  # fmt: skip


def _valid_until(bank_id: int, now: dt.datetime) -> dt.datetime:
    """When time alone changes the bank's prospects matched at ``now``: the next start, end
    or revocation of a grant of an enterprise that has a sharing grant naming the bank or
    every bank (its collection grants included), or the next local midnight (the years in
    operation)."""
    tomorrow = workdays.local_date(now) + dt.timedelta(days=1)
    midnight = dt.datetime.combine(tomorrow, dt.time(), tzinfo=workdays.SHANGHAI)
    moments = db.session.execute(_transitions_select(), {"bank_id": bank_id, "now": now}).one()
    return min([midnight.astimezone(dt.UTC), *(m for m in moments if m is not None)])


@cache
def _transitions_select() -> sa.Select[*tuple[Any, ...]]:
    """The next start, end and revocation after ``now`` among the grants of the enterprises
    that have a sharing grant for ``bank_id`` or every bank: each enterprise's grants looked
    up through its index, not every grant of the platform filtered."""
    now: sa.BindParameter[dt.datetime] = sa.bindparam("now")
    sharing = (
        sa.select(Authorization.enterprise_id)
        .where(
            Authorization.kind == AuthorizationKind.SHARING,
            sa.or_(
                Authorization.grantee_org_id == sa.bindparam("bank_id"),
                Authorization.all_banks.is_(True),
            ),
        )
        .distinct()
        .subquery()
    )
    grant = sa.orm.aliased(Authorization)
    return sa.select(
        *(
            sa.func.min(sa.case((column > now, column)))
            for column in (grant.valid_from, grant.valid_until, grant.revoked_at)
        )
    ).join_from(sharing, grant, grant.enterprise_id == sharing.c.enterprise_id)


@cache
def _page_select() -> sa.Select[*tuple[Any, ...]]:
    """A page's enterprises, those still shared with the bank (binds ``ids``, ``bank_id``,
    ``now``)."""
    return sa.select(Enterprise.id, Enterprise.uscc, Enterprise.name, Enterprise.size_class).where(
        Enterprise.id.in_(sa.bindparam("ids", expanding=True)),
        Enterprise.id.in_(authorization.shared_with_bank_select()),
    )


@cache
def _slice_select() -> sa.Select[*tuple[Any, ...]]:
    """An Open API slice's enterprises (:data:`_PROSPECT_COLUMNS`), those still shared with
    the bank (binds ``ids``, ``bank_id``, ``now``)."""
    return sa.select(*_PROSPECT_COLUMNS).where(
        Enterprise.id.in_(sa.bindparam("ids", expanding=True)),
        Enterprise.id.in_(authorization.shared_with_bank_select()),
    )


class NotVisible(LookupError):
    """The bank may not see this enterprise (or it does not exist): shown as 404 alike."""


@dataclass
class ProfileView:
    enterprise: Enterprise
    profile: Any  # the latest CreditProfile, or None
    records: dict[str, list[Any]]  # scope → latest-version rows, where records are shared
    hidden_scopes: list[str]  # scopes whose records the grant does not share
    marks: objections.Marks = field(default_factory=objections.Marks)  # what is disputed
    public_records: list[Any] = field(default_factory=list)  # published public-credit records

    def table_rows(self, scope: str, words: dict[bool, str], under_objection: str) -> Markup:
        """The body rows of ``scope``'s records table: each record's cells in the order of
        :data:`RECORD_COLUMNS` (a yes/no column in ``words``: 是 / 否, not True / False), then
        a cell with ``under_objection`` where the record is disputed (:attr:`marks`); ``words`` and
        ``under_objection`` come translated from the template.

        Built in one pass: a profile shows up to 24 months of several series per scope (a
        hundred rows and more), and Jinja, cell by cell, spent about 36 µs a row. Text is
        escaped; numbers (int, Decimal) are shown as they print, which has nothing to
        escape."""
        names = _RECORD_NAMES[scope]
        mark = (
            Markup(  # a constant; the words are escaped by %
                '<span class="status status-pending" data-testid="under-objection">%s</span>'
            )
            % under_objection
        )
        shown = {True: escape(words[True]), False: escape(words[False])}
        html = []
        for row in self.records[scope]:
            values = [getattr(row, name) for name in names]
            cells = "</td><td>".join(
                [
                    str(v) if type(v) in _NUMBERS else shown[v] if type(v) is bool else escape(v)
                    for v in values
                ]
            )
            html.append(
                f"<tr><td>{cells}</td><td>{mark if self.marks.has(row, scope) else ''}</td></tr>"
            )
        return Markup("".join(html))  # noqa: S704  # nosec B704  (built of escaped values)


_NUMBERS = (int, Decimal)


@cache
def record_headings(locale: str) -> dict[str, list[str]]:
    """The headings of each scope's records table (:data:`RECORD_COLUMNS`) in ``locale``,
    translated once per process: a lazy string costs about 8 µs each time it is shown, and a
    profile page shows up to 28 headings."""
    with force_locale(locale):
        return {
            scope: [str(label) for _name, label in columns]
            for scope, columns in RECORD_COLUMNS.items()
        }


def view_profile(actor: User, enterprise_id: int, now: dt.datetime | None = None) -> ProfileView:
    """The profile (and shared records) of one enterprise for a bank user, audited.

    Raises :class:`NotVisible` when there is no live grant — the same for an enterprise
    that does not exist, so the answer reveals nothing."""
    return show_profile(actor, enterprise_id, lambda view: view, now)


def show_profile(
    actor: User,
    enterprise_id: int,
    render: Callable[[ProfileView], T],
    now: dt.datetime | None = None,
) -> T:
    """:func:`view_profile` for a page: ``render(view)`` runs after the reads and before the
    writes (the grant's use count, the audit events), and its result is returned only once
    they are written, so a view that could not be logged is never shown. The caller commits.

    The view carries what the page marks and lists besides the profile: the open objections'
    marks and the published public-credit records, each read only when the enterprise's
    SELECT says there are some. Rendering first keeps the page's own reads (notifications)
    in the one transaction, and the audit chain's lock is held only from the events'
    append to the commit, never while a template renders."""
    now = now or utcnow()
    # The enterprise and its latest profile in one statement; the profile is shown only if
    # the policy allows below.
    found = db.session.execute(_enterprise_select(), {"enterprise_id": enterprise_id}).first()
    if found is None:
        raise NotVisible(enterprise_id)
    enterprise, latest, disputed, published, *has_records = found
    decision, per_scope = authorization.decide_for_view(
        actor.organization, enterprise, list(RECORD_SCOPES), now
    )
    if not decision.allowed:
        raise NotVisible(enterprise_id)
    records: dict[str, list[Any]] = {}
    hidden: list[str] = []
    for scope, has_any in zip(RECORD_SCOPES, has_records, strict=True):
        if per_scope[scope].allowed:
            records[scope] = _latest_versions(scope, enterprise.id) if has_any else []
        else:
            hidden.append(scope)
    view = ProfileView(
        enterprise,
        latest,
        records,
        hidden,
        objections.marks_for(enterprise.id) if disputed else objections.Marks(),
        credit_repair.shown_to_banks(enterprise.id, now) if published else [],
    )
    shown = render(view)
    # The writes last: the audit chain is locked from its append to the commit.
    authorization.record_uses([decision, *(per_scope[scope] for scope in records)], now)
    entries = [
        audit.Entry(
            "profile.view", actor, enterprise.id, object_type="enterprise", object_id=enterprise.id
        ),
        *(audit.Entry("records.view", actor, enterprise.id, scope=scope) for scope in records),
    ]
    audit.record_many(entries, now=now)
    return shown


@cache
def _enterprise_select() -> sa.Select[*tuple[Any, ...]]:
    """An enterprise, its latest profile (None when it has none), whether anything of it is
    under objection, whether it has public-credit records, and for each of
    :data:`RECORD_SCOPES` whether it has any record (the page reads a shared scope's
    records only when it has some: a statement fewer per shared scope with none); binds
    ``enterprise_id``."""
    return (
        sa.select(
            Enterprise,
            CreditProfile,
            objections.disputed_column(Enterprise.id),
            credit_repair.published_column(Enterprise.id),
            *(
                sa.exists().where(RECORD_MODELS[scope].enterprise_id == Enterprise.id)
                for scope in RECORD_SCOPES
            ),
        )
        .outerjoin(CreditProfile, CreditProfile.id == profiles.newest_id_column(Enterprise.id))
        .where(Enterprise.id == sa.bindparam("enterprise_id"))
    )


def _latest_versions(table: str, enterprise_id: int, months: int = 24) -> list[Any]:
    """The latest version of each of one enterprise's records in ``table``, of its newest
    ``months`` periods (picked in the query), newest period first."""
    return objections.latest_record_rows(enterprise_id, table, _RECORD_NAMES[table], months)
