import time
from datetime import date
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError

from advisor.errors import DomainError
from portfolios.services.optimization import ModelPortfolioError
from portfolios.services.simulation import (
    DEFAULT_ACCOUNTS,
    DEFAULT_SEED,
    SIMULATION_BOOK,
    DayResult,
    Summary,
    simulation_run,
)

KIND_LABELS = {
    "invest_cash": "cash",
    "rebalance": "rebalance",
    "tax_loss_harvest": "harvest",
    "switch_back": "switch back",
    "withdrawal": "withdrawal",
}


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        from argparse import ArgumentTypeError

        raise ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _money(amount: Decimal) -> str:
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def _pct(fraction: float) -> str:
    return f"{fraction:.2%}"


class Command(BaseCommand):
    help = (
        "Replay the nightly pipeline day by day over the stored prices with a deterministic book of synthetic "
        "investors (its own book: live accounts are never touched). With --auto-approve the investors' advisor "
        "approves every recommendation and the paper broker fills it at that day's closes. Resumable: dates "
        "already settled are skipped, an interrupted date is finished. See docs/simulation.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="date_from", type=_date, required=True, help="first date YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", type=_date, required=True, help="last date YYYY-MM-DD")
        parser.add_argument(
            "--accounts", type=int, default=DEFAULT_ACCOUNTS, help=f"accounts in the book (default {DEFAULT_ACCOUNTS})"
        )
        parser.add_argument("--auto-approve", action="store_true", help="approve and execute every recommendation")
        parser.add_argument("--book", default=SIMULATION_BOOK, help=f"the book's name (default {SIMULATION_BOOK!r})")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the book's seed (default {DEFAULT_SEED})")

    def handle(self, *args: object, **options: object) -> None:
        started = time.perf_counter()
        book = str(options["book"])
        accounts = int(options["accounts"])  # type: ignore[call-overload]
        if accounts < 1:
            raise CommandError("--accounts must be at least 1.")
        self.stdout.write(
            f"simulation {book}: {options['date_from']} to {options['date_to']}, {accounts} accounts, "
            f"{'auto-approve' if options['auto_approve'] else 'recommendations left pending'}"
        )
        try:
            summary = simulation_run(
                date_from=options["date_from"],  # type: ignore[arg-type]
                date_to=options["date_to"],  # type: ignore[arg-type]
                book=book,
                accounts=accounts,
                auto_approve=bool(options["auto_approve"]),
                seed=int(options["seed"]),  # type: ignore[call-overload]
                progress=self._day_line,
            )
        except (DomainError, ModelPortfolioError) as exc:
            fields = getattr(exc, "fields", None) or {}
            detail = "".join(f"\n  {name}: {message}" for name, message in fields.items())
            raise CommandError(f"{exc}{detail}") from exc
        self._summary(summary, time.perf_counter() - started)

    def _day_line(self, day: DayResult, index: int, total: int) -> None:
        if day.skipped:
            self.stdout.write(f"[{index}/{total}] {day.market_date}: settled before, skipped")
            return
        kinds = ", ".join(f"{KIND_LABELS.get(k, k)} {n}" for k, n in sorted(day.recommendations.items())) or "none"
        self.stdout.write(
            f"[{index}/{total}] {day.market_date}: recommendations {kinds}; approved {day.approved}, "
            f"rejected {day.rejected}; trades {day.fills}; drift mean {_pct(day.drift_mean)} "
            f"max {_pct(day.drift_max)}; value {_money(day.value)} ({day.pipeline_seconds:.1f}s)"
        )
        self.stdout.flush()

    def _summary(self, s: Summary, elapsed: float) -> None:
        write = self.stdout.write
        write("")
        dates = "market date" if s.days == 1 else "market dates"
        write(f"summary of {s.book}: {s.days} {dates} from {s.date_from} to {s.date_to}")
        write(f"  book                {s.investors} investors, {s.accounts} accounts")
        kinds = ", ".join(f"{KIND_LABELS.get(k, k)} {n}" for k, n in s.recommendations.items()) or "none"
        write(f"  recommendations     {sum(s.recommendations.values())} ({kinds}); approved {s.approved}, "
              f"rejected {s.rejected}")  # fmt: skip
        write(f"  trades              {s.trades} fills: buys {_money(s.buys)}, sells {_money(s.sells)}, "
              f"costs {_money(s.fees)}")  # fmt: skip
        write(f"  turnover            {s.turnover:.2%} of the average value {_money(s.average_value)} "
              f"({s.turnover_after_investing:.2%} without investing new cash)")  # fmt: skip
        write(f"  losses harvested    {_money(-s.harvested_losses)} in {s.harvest_trades} harvest sells "
              f"(wash-sale disallowed {_money(s.wash_sale_disallowed)})")  # fmt: skip
        write(f"  realized gains      short-term {_money(s.realized_short)}, long-term {_money(s.realized_long)}")
        write(f"  tracking to target  mean drift {_pct(s.drift_mean)}, largest account drift {_pct(s.drift_max)}")
        growth = (s.final_value / s.deposits - 1) if s.deposits else 0
        write(f"  value               {_money(s.final_value)} at the end vs {_money(s.deposits)} deposited "
              f"({growth:+.2%})")  # fmt: skip
        if s.months:
            write("  month    days  recs  trades  harvests  harvested     drift mean  drift max  value at end")
            for m in s.months:
                write(
                    f"  {m.month}  {m.days:>4}  {m.recommendations:>4}  {m.fills:>6}  {m.harvests:>8}  "
                    f"{_money(-m.harvested_losses):>11}  {_pct(m.drift_mean):>10}  {_pct(m.drift_max):>9}  "
                    f"{_money(m.value_end)}"
                )
        self.stdout.write(self.style.SUCCESS(f"done in {elapsed:.1f}s"))
