from django.core.management.base import BaseCommand

from profiling.models import SegmentationModel
from profiling.services.segments import segments_fit


class Command(BaseCommand):
    help = (
        "Fit investor segments over every current profile and store them as the next model version "
        "(the weekly 'investor-segments' beat task runs the same service). Segments never set a risk level."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-missing", action="store_true", help="fit only when no segmentation is stored yet (for make run)"
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["if_missing"] and SegmentationModel.objects.exists():
            self.stdout.write("A segmentation is already stored; nothing to do (drop --if-missing to refit).")
            return
        result = segments_fit()
        if "skipped" in result:
            self.stdout.write(self.style.WARNING(f"Nothing stored: {result['skipped']}"))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Segmentation v{result['version']}: k={result['k']} over {result['n_investors']} investors."
            )
        )
        self.stdout.write("Silhouette score by k (the highest wins):")
        for k, score in result["silhouette_scores"].items():
            marker = "  <- chosen" if int(k) == result["k"] else ""
            self.stdout.write(f"  k={k}: {score:.4f}{marker}")
        self.stdout.write("Segment sizes:")
        for segment, size in result["sizes"].items():
            self.stdout.write(f"  segment {segment}: {size}")
