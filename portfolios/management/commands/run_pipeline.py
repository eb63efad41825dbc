import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from advisor.errors import DomainError
from portfolios.models import LIVE_BOOK, RunStatus
from portfolios.services.optimization import ModelPortfolioError
from portfolios.services.pipeline import pipeline_run


class Command(BaseCommand):
    help = (
        "Run the nightly pipeline for a market date (default: the latest date with prices). The chunks run in this "
        "process with a line each, or with --async on the Celery workers. Running a date again resumes an "
        "unfinished run (its pending and failed chunks) and changes nothing on a finished one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", type=date.fromisoformat, help="market date YYYY-MM-DD")
        parser.add_argument("--book", default=LIVE_BOOK, help=f"the book of accounts (default {LIVE_BOOK})")
        parser.add_argument(
            "--rerun",
            action="store_true",
            help="scan a finished date again for accounts funded or profiled since (one recommendation per account)",
        )
        parser.add_argument(
            "--async",
            dest="dispatch_async",
            action="store_true",
            help="prepare here, then fan the chunks out to the Celery workers and return",
        )

    def handle(self, *args: object, **options: object) -> None:
        started = time.perf_counter()
        market_date = options.get("date")
        book = str(options["book"])
        self.stdout.write(f"pipeline {book} for {market_date or 'the latest market date'}")
        try:
            run = pipeline_run(
                market_date=market_date,  # type: ignore[arg-type]
                book=book,
                rerun=bool(options["rerun"]),
                dispatch="celery" if options["dispatch_async"] else "inline",
                progress=lambda line: self.stdout.write(line),
            )
        except (DomainError, ModelPortfolioError) as exc:
            raise CommandError(str(exc)) from exc
        elapsed = time.perf_counter() - started
        if run.status == RunStatus.RUNNING:
            self.stdout.write(
                self.style.SUCCESS(
                    f"pipeline {run.market_date}: {run.chunks_total} chunks on the workers "
                    f"(prepared in {elapsed:.1f}s); follow it at /staff/pipeline/"
                )
            )
            return
        counts = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items())) or "nothing to do"
        self.stdout.write(self.style.SUCCESS(f"pipeline {run.market_date}: {run.status} ({counts}) in {elapsed:.1f}s"))
        if run.error:
            raise CommandError(run.error)
