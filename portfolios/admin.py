from django.contrib import admin

from .models import Account, Asset, AssetClass, ModelPortfolio, OptimizationRun, PipelineRun, Recommendation


@admin.register(AssetClass)
class AssetClassAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "display_order")


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("ticker", "name", "asset_class", "in_model_universe")
    list_filter = ("asset_class", "in_model_universe")


@admin.register(OptimizationRun)
class OptimizationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "as_of", "status", "solver", "created_at", "data_hash")
    readonly_fields = [f.name for f in OptimizationRun._meta.fields]


@admin.register(ModelPortfolio)
class ModelPortfolioAdmin(admin.ModelAdmin):
    list_display = ("run", "risk_level", "expected_return", "volatility")


@admin.register(PipelineRun)
class PipelineRunAdmin(admin.ModelAdmin):
    list_display = ("market_date", "status", "started_at", "finished_at")
    readonly_fields = [f.name for f in PipelineRun._meta.fields]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "account_type", "created_at")
    readonly_fields = ("owner",)


@admin.register(Recommendation)
class RecommendationAdmin(admin.ModelAdmin):
    """Read-only here: decisions go through the advisor pages so they are audited."""

    list_display = ("id", "account", "kind", "status", "market_date", "created_at")
    list_filter = ("status", "kind")

    def has_change_permission(self, request, obj=None):
        return False
