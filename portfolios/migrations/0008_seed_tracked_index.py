"""Fill ``Asset.tracks_index`` (a migration of its own, as 0005: data changes apart from schema changes)."""

from django.db import migrations

from portfolios.universe import seed_universe


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    seed_universe(apps.get_model("portfolios", "AssetClass"), apps.get_model("portfolios", "Asset"))


class Migration(migrations.Migration):
    dependencies = [("portfolios", "0007_tax_lots_pipeline_chunks")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
