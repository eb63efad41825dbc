from django.db import migrations, models

from portfolios.universe import seed_universe


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    seed_universe(apps.get_model("portfolios", "AssetClass"), apps.get_model("portfolios", "Asset"))


class Migration(migrations.Migration):
    dependencies = [("portfolios", "0002_seed_universe")]

    operations = [
        migrations.AddField(
            model_name="asset",
            name="esg_flags",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
