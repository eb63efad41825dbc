from django.core.management.base import BaseCommand, CommandError

from compliance.audit import audit_verify


class Command(BaseCommand):
    help = "Recompute the audit log's hash chain and name the first broken event."

    def handle(self, *args: object, **options: object) -> None:
        count, broken = audit_verify()
        if broken is not None:
            raise CommandError(f"Audit chain broken at event #{broken.event_id}: {broken.reason}")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {count} events verified."))
