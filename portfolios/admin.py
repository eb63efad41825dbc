from django.contrib import admin

from advisor.admin_mixins import ReadOnlyAdminMixin

from .models import Account, Asset, AssetClass, ModelPortfolio, OptimizationRun, PipelineRun, Recommendation


@admin.register(AssetClass)
class AssetClassAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "display_order")


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("ticker", "name", "asset_class", "in_model_universe")
    list_filter = ("asset_class", "in_model_universe")


@admin.register(OptimizationRun)
class OptimizationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "as_of", "status", "solver", "created_at", "data_hash")


@admin.register(ModelPortfolio)
class ModelPortfolioAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("run", "risk_level", "expected_return", "volatility")


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("market_date", "status", "started_at", "finished_at")


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "name", "owner", "account_type", "created_at")


@admin.register(Recommendation)
class RecommendationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Decisions go through the advisor pages so they are audited."""

    list_display = ("id", "account", "kind", "status", "market_date", "created_at")
    list_filter = ("status", "kind")
