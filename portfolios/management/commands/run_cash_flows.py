import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from portfolios.models import LIVE_BOOK
from portfolios.selectors import market_date_latest
from portfolios.services.cashflows import recurring_deposits_run, withdrawals_settle_all


class Command(BaseCommand):
    help = (
        "Make the recurring deposits due on or before a market date (default: the latest date with prices), then "
        "pay the pending withdrawals the cash now covers. Safe to run again: each due date is deposited once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", type=date.fromisoformat, help="market date YYYY-MM-DD")
        parser.add_argument("--book", default=LIVE_BOOK, help=f"accounts of this book (default {LIVE_BOOK!r})")

    def handle(self, *args: object, **options: object) -> None:
        started = time.perf_counter()
        market_date = options.get("date") or market_date_latest()
        if market_date is None:
            raise CommandError("No prices imported: there is no market date yet (import_prices first).")
        book = str(options["book"])
        deposits = recurring_deposits_run(market_date=market_date, book=book)  # type: ignore[arg-type]
        paid = withdrawals_settle_all(book=book)
        self.stdout.write(
            self.style.SUCCESS(
                f"cash flows {market_date} ({book}): {deposits} recurring deposits, {paid} withdrawals paid "
                f"in {time.perf_counter() - started:.1f}s"
            )
        )
