import sys
import time

from django.core.management.base import BaseCommand, CommandError

from portfolios.prices import PriceFileError
from portfolios.services.market_data import prices_import


class Command(BaseCommand):
    help = "Validate a price file (date,ticker,adj_close; .csv or .csv.gz) and import it atomically."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("files", nargs="+", help="price files to import, in order")

    def handle(self, *args: object, **options: object) -> None:
        started = time.perf_counter()
        for path in options["files"]:  # type: ignore[attr-defined]
            self.stdout.write(f"{path}: validating ...")
            last_shown = [0.0]

            def progress(stage: str, done: int, total: int) -> None:
                now = time.perf_counter()
                if done == total or now - last_shown[0] > 0.5:
                    last_shown[0] = now
                    pct = 100 * done // total if total else 100
                    self.stdout.write(f"  {stage} {done:,}/{total:,} rows ({pct}%)")
                    sys.stdout.flush()

            try:
                result = prices_import(path=path, progress=progress)
            except PriceFileError as exc:
                raise CommandError(f"{path}: rejected, nothing imported.\n{exc}") from exc
            self.stdout.write(
                self.style.SUCCESS(
                    f"{path}: {result.rows:,} rows ({result.first_date} to {result.last_date}): "
                    f"{result.inserted:,} inserted, {result.unchanged:,} already stored."
                )
            )
        self.stdout.write(f"done in {time.perf_counter() - started:.1f}s")
