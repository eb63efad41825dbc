import time
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from portfolios.prices import PriceFileError
from portfolios.services.market_data import prices_import


class Command(BaseCommand):
    help = "Validate a price file (date,ticker,adj_close; .csv or .csv.gz) and import it atomically."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", help="price files to import, in order")

    def _progress_printer(self) -> Callable[[str, int, int], None]:
        """Counted progress lines, at most two a second, and always the last one."""
        last_shown = 0.0

        def progress(stage: str, done: int, total: int) -> None:
            nonlocal last_shown
            now = time.perf_counter()
            if done == total or now - last_shown > 0.5:
                last_shown = now
                pct = 100 * done // total if total else 100
                self.stdout.write(f"  {stage} {done:,}/{total:,} rows ({pct}%)")
                self.stdout.flush()

        return progress

    def handle(self, *args: object, **options: object) -> None:
        started = time.perf_counter()
        for path in options["files"]:  # type: ignore[attr-defined]
            self.stdout.write(f"{path}: validating ...")
            try:
                result = prices_import(path=path, progress=self._progress_printer())
            except PriceFileError as exc:
                raise CommandError(f"{path}: rejected, nothing imported.\n{exc}") from exc
            self.stdout.write(
                self.style.SUCCESS(
                    f"{path}: {result.rows:,} rows ({result.first_date} to {result.last_date}): "
                    f"{result.inserted:,} inserted, {result.unchanged:,} already stored."
                )
            )
        self.stdout.write(f"done in {time.perf_counter() - started:.1f}s")
