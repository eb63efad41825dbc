"""The shipped asset classes and funds, so price files can be imported right after migrating."""

from django.db import migrations

from portfolios.universe import seed_universe


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    seed_universe(apps.get_model("portfolios", "AssetClass"), apps.get_model("portfolios", "Asset"))


class Migration(migrations.Migration):
    dependencies = [("portfolios", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
