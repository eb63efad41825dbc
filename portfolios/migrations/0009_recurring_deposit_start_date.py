"""Recurring deposits remember their first due date: monthly schedules keep its day of the month."""

from django.db import migrations, models


def start_at_next_date(apps, schema_editor):
    RecurringDeposit = apps.get_model("portfolios", "RecurringDeposit")
    RecurringDeposit.objects.filter(start_date__isnull=True).update(start_date=models.F("next_date"))


class Migration(migrations.Migration):
    dependencies = [("portfolios", "0008_seed_tracked_index")]

    operations = [
        migrations.AddField(model_name="recurringdeposit", name="start_date", field=models.DateField(null=True)),
        migrations.RunPython(start_at_next_date, migrations.RunPython.noop),
        migrations.AlterField(model_name="recurringdeposit", name="start_date", field=models.DateField()),
    ]
