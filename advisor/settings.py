"""Settings for Advisor, read from the environment (django-environ).

Every setting a deployment may change is documented in ``docs/operations.md``.
Development defaults need no server at all: SQLite in ``var/`` and Celery's
filesystem transport under ``var/broker``. ``DJANGO_PRODUCTION=true`` switches
to the hardened mode, where secrets have no default.
"""

from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

PRODUCTION = env.bool("DJANGO_PRODUCTION", default=False)

if PRODUCTION:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
    DEBUG = env.bool("DJANGO_DEBUG", default=False)
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-change-me")
    DEBUG = env.bool("DJANGO_DEBUG", default=True)
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "advisor",
    "profiling",
    "portfolios",
    "compliance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout into a response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "advisor.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "advisor.wsgi.application"

# --- Database -----------------------------------------------------------------
VAR_DIR.mkdir(exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'advisor.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; IMMEDIATE
    # transactions plus a busy timeout make writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT_SECONDS", default=20),
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Identity ---------------------------------------------------------------------
AUTH_USER_MODEL = "advisor.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = env.bool("AXES_VERBOSE", default=False)

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Advisor <no-reply@advisor.local>")

# --- Internationalisation ---------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
if not PRODUCTION:
    Path(STATIC_ROOT).mkdir(exist_ok=True)  # WhiteNoise warns on every request if it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an anonymous API call gets 401 with WWW-Authenticate.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # DRF's default is AllowAny; nothing in Advisor is public by accident.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "advisor.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Advisor API",
    "DESCRIPTION": "Profiles, portfolios, accounts and recommendations of the Advisor robo-advisor.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RecommendationStatusEnum": "portfolios.models.RecommendationStatus",
        "RunStatusEnum": "portfolios.models.RunStatus",
        "RecommendationKindEnum": "portfolios.models.RecommendationKind",
        "CashMovementKindEnum": "portfolios.models.CashMovementKind",
        "WithdrawalStatusEnum": "portfolios.models.WithdrawalStatus",
    },
}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for sub in ("queue", "processed"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # After the US close (21:00 UTC in winter) once end-of-day prices have landed.
    "nightly-pipeline": {
        "task": "portfolios.tasks.nightly_pipeline",
        "schedule": crontab(
            minute=env.int("PIPELINE_CRON_MINUTE", default=30),
            hour=env.int("PIPELINE_CRON_HOUR", default=22),
            day_of_week="mon-fri",
        ),
    },
    # Before the pipeline, so the pipeline sees today's behavioural adjustments.
    "behaviour-scores": {
        "task": "profiling.tasks.update_behavior_scores",
        "schedule": crontab(minute=0, hour=22, day_of_week="mon-fri"),
    },
    "investor-segments": {
        "task": "profiling.tasks.fit_segments",
        "schedule": crontab(minute=0, hour=3, day_of_week="sun"),
    },
}

# --- Advisor domain parameters ---------------------------------------------------------


def _decimal(name: str, *, default: str) -> Decimal:
    raw = env.str(name, default=default)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be a decimal number, got {raw!r}") from None
    if not value.is_finite() or value < 0:
        raise ImproperlyConfigured(f"{name} must be a finite non-negative number, got {raw!r}")
    return value


ADVISOR = {
    # Rebalance when any asset class is further than this from target (absolute weight).
    "DRIFT_BAND": _decimal("ADVISOR_DRIFT_BAND", default="0.05"),
    # Invest cash when uninvested cash is above both of these.
    "CASH_THRESHOLD_AMOUNT": _decimal("ADVISOR_CASH_THRESHOLD_AMOUNT", default="100"),
    "CASH_THRESHOLD_WEIGHT": _decimal("ADVISOR_CASH_THRESHOLD_WEIGHT", default="0.01"),
    "MIN_TRADE_AMOUNT": _decimal("ADVISOR_MIN_TRADE_AMOUNT", default="50"),
    # Paper broker: cost of a fill as a fraction of its notional.
    "TRADING_COST_RATE": _decimal("ADVISOR_TRADING_COST_RATE", default="0.0005"),
    # Years of daily prices used to estimate expected returns and covariance.
    "ESTIMATION_YEARS": env.int("ADVISOR_ESTIMATION_YEARS", default=15),
    "MAX_ASSET_WEIGHT": env.float("ADVISOR_MAX_ASSET_WEIGHT", default=0.35),
    # Compliance: no single fund above this share of an account after a recommendation's trades.
    "MAX_POSITION_WEIGHT": _decimal("ADVISOR_MAX_POSITION_WEIGHT", default="0.40"),
    # The nightly pipeline fans out over chunks of about this many accounts (never splitting an investor).
    "PIPELINE_CHUNK_SIZE": env.int("ADVISOR_PIPELINE_CHUNK_SIZE", default=2000),
    # A pending or blocked recommendation older than this many days expires at the next pipeline run: its trades
    # were sized at prices that have moved, and while it is open its account gets no fresh proposal.
    "RECOMMENDATION_MAX_AGE_DAYS": env.int("ADVISOR_RECOMMENDATION_MAX_AGE_DAYS", default=7),
}

# --- Security (production) ----------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
