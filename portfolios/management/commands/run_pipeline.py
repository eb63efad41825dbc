import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from advisor.errors import DomainError
from portfolios.services.optimization import ModelPortfolioError
from portfolios.services.pipeline import pipeline_run


class Command(BaseCommand):
    help = "Run the nightly pipeline for a market date (default: the latest date with prices), in this process."

    def add_arguments(self, parser):
        parser.add_argument("--date", type=date.fromisoformat, help="market date YYYY-MM-DD")
        parser.add_argument(
            "--rerun",
            action="store_true",
            help="scan a finished date again for accounts funded or profiled since (one recommendation per account)",
        )

    def handle(self, *args: object, **options: object) -> None:
        started = time.perf_counter()
        market_date = options.get("date")
        self.stdout.write(f"pipeline for {market_date or 'the latest market date'}: optimizing, then accounts ...")
        try:
            run = pipeline_run(market_date=market_date, rerun=bool(options["rerun"]))  # type: ignore[arg-type]
        except (DomainError, ModelPortfolioError) as exc:
            raise CommandError(str(exc)) from exc
        counts = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items())) or "nothing to do"
        self.stdout.write(
            self.style.SUCCESS(
                f"pipeline {run.market_date}: {run.status} ({counts}) in {time.perf_counter() - started:.1f}s"
            )
        )
        if run.error:
            raise CommandError(run.error)
