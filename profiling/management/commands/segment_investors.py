from django.core.management.base import BaseCommand

from profiling.services.segments import segments_fit


class Command(BaseCommand):
    help = (
        "Fit investor segments over every current profile and store them as the next model version "
        "(the weekly 'investor-segments' beat task runs the same service). Segments never set a risk level."
    )

    def handle(self, *args: object, **options: object) -> None:
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
