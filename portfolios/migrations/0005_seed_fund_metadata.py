"""Fill the fund metadata and add the alternative funds (a migration of its own: on Postgres, rows
changed in the migration that adds a foreign key would block its deferred index creation)."""

from django.db import migrations

from portfolios.universe import seed_universe


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    seed_universe(apps.get_model("portfolios", "AssetClass"), apps.get_model("portfolios", "Asset"))


class Migration(migrations.Migration):
    dependencies = [("portfolios", "0004_fund_metadata")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
