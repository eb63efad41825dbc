from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("portfolios", "0009_recurring_deposit_start_date")]

    operations = [
        # Chunks hold whole investors (the wash-sale rule spans an investor's accounts): bounded by owner ids.
        migrations.RenameField("pipelinechunk", "first_account_id", "first_owner_id"),
        migrations.RenameField("pipelinechunk", "last_account_id", "last_owner_id"),
        migrations.AddField("pipelinerun", "stage", models.CharField(default="prepare", max_length=16)),
        migrations.AddField("pipelinerun", "notes", models.JSONField(default=list)),
    ]
