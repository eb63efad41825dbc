"""Re-optimization on an admin's request: the model portfolios of the latest market date under the parameters
in force, then the personal target of every live account, without waiting for the nightly pipeline.

Asked for on the admin page or the API (``optimization_rerun_queue``, which queues the task after commit), and
after an approved change of the optimization parameters (compliance queues the same task by name). The task
(``portfolios.tasks.reoptimize``) calls ``optimization_rerun``: safe to deliver twice, since the same prices and
parameters reuse the stored run and its stored targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any, Final

from django.db import transaction
from django.db.models import Max

from advisor.errors import InvalidStateError, NotAllowedError
from advisor.models import Role
from compliance.audit import audit_record
from compliance.rules import VOLATILITY_BANDS

from ..models import LIVE_BOOK, Account, OptimizationRun
from ..selectors import current_risk_levels, market_date_latest, optimization_policy_current
from .optimization import model_portfolios_build
from .targets import personal_targets_build

# Accounts read and given targets per batch: bounded memory, and each batch shares its solves.
ACCOUNT_BATCH: Final = 2000
# The audit event names this many failing accounts and counts the rest.
FAILURES_LISTED: Final = 20


@dataclass
class RerunResult:
    run: OptimizationRun
    reused: bool  # the same prices and parameters: the stored run, nothing solved again
    accounts: int = 0  # live accounts whose owner has a risk profile
    targets: int = 0  # of them, how many have a personal target for the run
    failures: list[str] = field(default_factory=list)
    # Levels whose model portfolio compliance's volatility band refuses: every recommendation at such a level
    # would be blocked, so the admin hears of it now rather than from the advisors' queue.
    outside_bands: dict[int, str] = field(default_factory=dict)


def levels_outside_bands(run: OptimizationRun) -> dict[int, str]:
    """Level -> the model portfolio's volatility, for the levels outside their compliance band."""
    outside = {}
    for level, volatility in run.model_portfolios.values_list("risk_level", "volatility"):
        low, high = VOLATILITY_BANDS.get(level, (0.0, 0.0))
        if not low <= float(volatility) <= high:
            outside[level] = str(volatility)
    return outside


def _require_admin(actor: Any) -> None:
    if getattr(actor, "role", None) != Role.ADMIN:
        raise NotAllowedError("Only an admin can re-optimize the model portfolios.")


def optimization_rerun_queue(*, actor: Any) -> tuple[date, int]:
    """Queue a re-optimization (after the caller's transaction commits); the market date and the version of
    the optimization parameters it will use, as of now."""
    from ..tasks import reoptimize  # tasks import the services

    _require_admin(actor)
    market_date = market_date_latest()
    if market_date is None:
        raise InvalidStateError("No prices are stored yet: import prices before re-optimizing.")
    version, _ = optimization_policy_current()
    transaction.on_commit(partial(reoptimize.delay, actor.pk))
    return market_date, version


def _live_accounts_in_batches() -> Any:
    last_id = 0
    while True:
        batch = list(Account.objects.filter(book=LIVE_BOOK, pk__gt=last_id).order_by("pk")[:ACCOUNT_BATCH])
        if not batch:
            return
        yield batch
        last_id = batch[-1].pk


def optimization_rerun(*, actor: Any) -> RerunResult:
    """Build (or reuse) the model portfolios of the latest market date under the parameters in force, then the
    personal targets of every live account whose owner has a risk profile; audited as ``optimization.requested``.

    ``model_portfolios_build`` refuses with ``ModelPortfolioError`` (and records the failed run) when the prices
    cannot be estimated or solved; nothing further happens then.
    """
    _require_admin(actor)
    market_date = market_date_latest()
    if market_date is None:
        raise InvalidStateError("No prices are stored yet: import prices before re-optimizing.")
    from compliance.parameters import parameter_sets_initialize

    parameter_sets_initialize()
    newest_before = OptimizationRun.objects.aggregate(newest=Max("pk"))["newest"] or 0
    run = model_portfolios_build(as_of=market_date, actor=actor)
    result = RerunResult(run=run, reused=run.pk <= newest_before, outside_bands=levels_outside_bands(run))

    for accounts in _live_accounts_in_batches():
        levels = current_risk_levels({a.owner_id for a in accounts})
        with_levels = [(a, levels[a.owner_id]) for a in accounts if a.owner_id in levels]
        targets = personal_targets_build(
            optimization_run=run, accounts_with_levels=with_levels, failures=result.failures
        )
        result.accounts += len(with_levels)
        result.targets += len(targets)

    with transaction.atomic():
        audit_record(
            actor=actor,
            action="optimization.requested",
            obj=run,
            payload={
                "as_of": run.as_of,
                "reused": result.reused,
                "policy_version": run.parameters.get("policy_version"),
                "accounts": result.accounts,
                "targets": result.targets,
                "failures": result.failures[:FAILURES_LISTED],
                "failure_count": len(result.failures),
                "levels_outside_volatility_bands": {str(k): v for k, v in result.outside_bands.items()},
            },
        )
    return result
