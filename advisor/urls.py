from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from compliance import api as compliance_api
from compliance import api_parameters as compliance_api_parameters
from compliance import views as compliance_views
from compliance import views_parameters as compliance_views_parameters
from portfolios import api as portfolios_api
from portfolios import api_accounts as portfolios_api_accounts
from portfolios import api_optimization as portfolios_api_optimization
from portfolios import api_targets as portfolios_api_targets
from portfolios import api_tax as portfolios_api_tax
from portfolios import views as portfolios_views
from portfolios import views_accounts as portfolios_views_accounts
from portfolios import views_tax as portfolios_views_tax
from profiling import api as profiling_api
from profiling import api_behaviour as profiling_api_behaviour
from profiling import views as profiling_views
from profiling import views_questionnaire as profiling_views_questionnaire

from . import api, views

api_patterns = [
    path("me/", api.MeApi.as_view(), name="api-me"),
    path("auth/token/", api.TokenApi.as_view(), name="api-token"),
    path("questionnaires/", profiling_api.QuestionnaireListApi.as_view(), name="api-questionnaires"),
    path("questionnaires/<str:version>/", profiling_api.QuestionnaireDetailApi.as_view(), name="api-questionnaire"),
    path("profile/", profiling_api.ProfileApi.as_view(), name="api-profile"),
    path("profile/history/", profiling_api.ProfileHistoryApi.as_view(), name="api-profile-history"),
    path("profile/<int:pk>/confirm/", profiling_api.ProfileConfirmApi.as_view(), name="api-profile-confirm"),
    path("goals/", profiling_api.GoalListApi.as_view(), name="api-goals"),
    path("goals/<int:pk>/", profiling_api.GoalDetailApi.as_view(), name="api-goal"),
    path("preferences/", profiling_api.PreferencesApi.as_view(), name="api-preferences"),
    path("behavior-events/", profiling_api.BehaviorEventListApi.as_view(), name="api-behavior-events"),
    path("clients/<int:pk>/profile/", profiling_api.ClientProfileApi.as_view(), name="api-client-profile"),
    path("clients/<int:pk>/override/", profiling_api.ClientOverrideApi.as_view(), name="api-client-override"),
    path("clients/<int:pk>/review/", profiling_api.ClientReviewApi.as_view(), name="api-client-review"),
    path("model-portfolios/", portfolios_api.ModelPortfolioListApi.as_view(), name="api-model-portfolios"),
    path("accounts/", portfolios_api_accounts.AccountListCreateApi.as_view(), name="api-accounts"),
    path(
        "model-portfolios/what-if/", portfolios_api_targets.ModelWhatIfApi.as_view(), name="api-model-portfolios-whatif"
    ),
    path("assets/", portfolios_api_targets.AssetListApi.as_view(), name="api-assets"),
    path("accounts/<int:pk>/", portfolios_api.AccountDetailApi.as_view(), name="api-account"),
    path("accounts/<int:pk>/target/", portfolios_api_targets.AccountTargetApi.as_view(), name="api-account-target"),
    path("accounts/<int:pk>/deposits/", portfolios_api.AccountDepositApi.as_view(), name="api-account-deposit"),
    path("accounts/<int:pk>/ledger/", portfolios_api_accounts.AccountLedgerApi.as_view(), name="api-account-ledger"),
    path(
        "accounts/<int:pk>/recurring-deposits/",
        portfolios_api_accounts.AccountRecurringDepositsApi.as_view(),
        name="api-account-recurring-deposits",
    ),
    path(
        "recurring-deposits/<int:pk>/cancel/",
        portfolios_api_accounts.RecurringDepositCancelApi.as_view(),
        name="api-recurring-deposit-cancel",
    ),
    path(
        "accounts/<int:pk>/withdrawals/",
        portfolios_api_accounts.AccountWithdrawalsApi.as_view(),
        name="api-account-withdrawals",
    ),
    path(
        "withdrawals/<int:pk>/cancel/",
        portfolios_api_accounts.WithdrawalCancelApi.as_view(),
        name="api-withdrawal-cancel",
    ),
    path("accounts/<int:pk>/lots/", portfolios_api_tax.AccountLotsApi.as_view(), name="api-account-lots"),
    path(
        "accounts/<int:pk>/realized-gains/",
        portfolios_api_tax.AccountRealizedGainsApi.as_view(),
        name="api-account-realized-gains",
    ),
    path("tax-summary/", portfolios_api_tax.TaxSummaryApi.as_view(), name="api-tax-summary"),
    path(
        "clients/<int:pk>/tax-summary/",
        portfolios_api_tax.ClientTaxSummaryApi.as_view(),
        name="api-client-tax-summary",
    ),
    path(
        "accounts/<int:pk>/sell-everything-requests/",
        profiling_api_behaviour.SellEverythingRequestApi.as_view(),
        name="api-sell-everything-request",
    ),
    path("recommendations/", portfolios_api.RecommendationListApi.as_view(), name="api-recommendations"),
    path("recommendations/<int:pk>/", portfolios_api.RecommendationDetailApi.as_view(), name="api-recommendation"),
    path(
        "recommendations/<int:pk>/approve/",
        portfolios_api.RecommendationApproveApi.as_view(),
        name="api-recommendation-approve",
    ),
    path(
        "recommendations/<int:pk>/reject/",
        portfolios_api.RecommendationRejectApi.as_view(),
        name="api-recommendation-reject",
    ),
    path("pipeline-runs/", portfolios_api.PipelineRunListApi.as_view(), name="api-pipeline-runs"),
    path("audit-events/", compliance_api.AuditEventListApi.as_view(), name="api-audit-events"),
    path("audit-events/verify/", compliance_api.AuditVerifyApi.as_view(), name="api-audit-verify"),
    path("restricted-assets/", compliance_api.RestrictedAssetListApi.as_view(), name="api-restricted-assets"),
    path(
        "optimization-runs/", portfolios_api_optimization.OptimizationRunListApi.as_view(), name="api-optimization-runs"
    ),
    path(
        "optimization-runs/<int:pk>/",
        portfolios_api_optimization.OptimizationRunDetailApi.as_view(),
        name="api-optimization-run",
    ),
    path("parameters/", compliance_api_parameters.ParametersCurrentApi.as_view(), name="api-parameters"),
    path(
        "parameter-changes/", compliance_api_parameters.ParameterChangeListApi.as_view(), name="api-parameter-changes"
    ),
    path(
        "parameter-changes/<int:pk>/approve/",
        compliance_api_parameters.ParameterChangeApproveApi.as_view(),
        name="api-parameter-change-approve",
    ),
    path(
        "parameter-changes/<int:pk>/reject/",
        compliance_api_parameters.ParameterChangeRejectApi.as_view(),
        name="api-parameter-change-reject",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("signup/", views.signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("profile/questionnaire/", profiling_views_questionnaire.questionnaire, name="questionnaire"),
    path("profile/result/", profiling_views.result, name="profile-result"),
    path("profile/<int:pk>/confirm/", profiling_views.confirm, name="profile-confirm"),
    path("profile/history/", profiling_views.history, name="profile-history"),
    path("profile/restore-level/", profiling_views.restore_level, name="profile-restore"),
    path("goals/", profiling_views.goals, name="goals"),
    path("goals/<int:pk>/remove/", profiling_views.goal_remove, name="goal-remove"),
    path("preferences/", profiling_views.preferences, name="preferences"),
    path("advisor/clients/<int:pk>/", profiling_views.client, name="advisor-client"),
    path("advisor/clients/<int:pk>/override/", profiling_views.client_override, name="advisor-client-override"),
    path("advisor/clients/<int:pk>/review/", profiling_views.client_review, name="advisor-client-review"),
    path("advisor/clients/<int:pk>/tax/", portfolios_views_tax.client_tax_summary, name="advisor-client-tax"),
    path("dashboard/", portfolios_views.dashboard, name="dashboard"),
    path("tax/", portfolios_views_tax.tax_summary, name="tax-summary"),
    path("my-accounts/<int:pk>/deposit/", portfolios_views.deposit, name="deposit"),
    path("my-accounts/new/", portfolios_views_accounts.account_new, name="account-open"),
    path("my-accounts/<int:pk>/", portfolios_views_accounts.account_detail, name="account-detail"),
    path(
        "my-accounts/<int:pk>/recurring-deposits/",
        portfolios_views_accounts.recurring_deposit_new,
        name="recurring-deposit-create",
    ),
    path(
        "my-accounts/recurring-deposits/<int:pk>/cancel/",
        portfolios_views_accounts.recurring_deposit_stop,
        name="recurring-deposit-cancel",
    ),
    path("my-accounts/<int:pk>/withdrawals/", portfolios_views_accounts.withdrawal_new, name="withdrawal-request"),
    path(
        "my-accounts/withdrawals/<int:pk>/cancel/",
        portfolios_views_accounts.withdrawal_stop,
        name="withdrawal-cancel",
    ),
    path("recommendations/<int:pk>/", portfolios_views.recommendation, name="recommendation"),
    path(
        "recommendations/<int:pk>/approve/",
        portfolios_views.recommendation_decide,
        {"decision": "approve"},
        name="recommendation-approve",
    ),
    path(
        "recommendations/<int:pk>/reject/",
        portfolios_views.recommendation_decide,
        {"decision": "reject"},
        name="recommendation-reject",
    ),
    path("portfolios/models/", portfolios_views.model_portfolios, name="model-portfolios"),
    path("portfolios/models/what-if/", portfolios_views.model_whatif, name="model-whatif"),
    path("advisor/queue/", portfolios_views.advisor_queue, name="advisor-queue"),
    path("staff/investors/", views.staff_investors, name="staff-investors"),
    path("staff/investors/<int:pk>/advisor/", views.staff_assign_advisor, name="staff-assign-advisor"),
    path("staff/pipeline/", portfolios_views.pipeline_runs, name="staff-pipeline"),
    path("staff/audit/", compliance_views.audit_log, name="staff-audit"),
    path("staff/restricted/", compliance_views.restricted_list, name="staff-restricted"),
    path(
        "staff/restricted/<str:ticker>/remove/",
        compliance_views.restricted_list_remove,
        name="staff-restricted-remove",
    ),
    path("staff/optimization/", compliance_views_parameters.optimization_page, name="staff-optimization"),
    path("staff/optimization/rerun/", compliance_views_parameters.optimization_rerun, name="staff-optimization-rerun"),
    path(
        "staff/optimization/changes/<int:pk>/approve/",
        compliance_views_parameters.parameter_change_decide,
        {"decision": "approve"},
        name="staff-parameter-approve",
    ),
    path(
        "staff/optimization/changes/<int:pk>/reject/",
        compliance_views_parameters.parameter_change_decide,
        {"decision": "reject"},
        name="staff-parameter-reject",
    ),
    path("api/", include(api_patterns)),
    path("django-admin/", admin.site.urls),
]
