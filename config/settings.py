"""Settings come from the environment; development defaults work out of the box.

`APP_ENV=production` refuses to start without its secrets (SECRET_KEY, DATABASE_URL and the token verifier's
configuration) so that a misconfigured deployment fails at boot, not at the first request.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


APP_ENV = env("APP_ENV", "development")
PRODUCTION = APP_ENV == "production"

if PRODUCTION:
    missing = [
        name
        for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AUTH_VERIFIER")
        if not env(name)
    ]
    if missing:
        raise ImproperlyConfigured(
            f"APP_ENV=production needs these environment variables: {', '.join(missing)}"
        )

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 - in the repository, refused in production
SECRET_KEY = env("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", not PRODUCTION)
if PRODUCTION:
    # Django's own deploy check asks for 50 characters; a key from the repository or a short one is refused.
    if SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50:
        raise ImproperlyConfigured(
            "APP_ENV=production needs its own SECRET_KEY of at least 50 characters (not the development one)"
        )
    if DEBUG:
        raise ImproperlyConfigured("APP_ENV=production refuses DEBUG=1: it shows settings and tracebacks")
ALLOWED_HOSTS = [h for h in env("ALLOWED_HOSTS", "*" if not PRODUCTION else "").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_prometheus",
    "core",
    "customers",
    "loyalty",
    "credit",
    "segmentation",
    "customer360",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.tenancy.AdminTenantMiddleware",
    "core.backoffice.BackOfficeDisplayMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "django.template.context_processors.i18n",
                "core.backoffice.back_office",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------------
# The app connects as its own NOSUPERUSER NOBYPASSRLS role: a superuser would bypass Row-Level Security.
if not env("DATABASE_URL") and not PRODUCTION:
    os.environ.setdefault("DATABASE_URL", "postgres://zenlogic_app:zenlogic_app@127.0.0.1:5432/zenlogic")
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
        engine="django_prometheus.db.backends.postgresql",
    )
}
DATABASES["default"].setdefault("TEST", {})
DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), "connect_timeout": 5}
# The app's role owns nothing (only SELECT/INSERT/UPDATE/DELETE on the tables), so it can neither turn Row-Level
# Security off nor TRUNCATE (which RLS does not filter). `migrate` and `flush` connect as the role that owns the
# tables: the user and password of DATABASE_OWNER_URL, on the app's server and database. Development defaults to
# zenlogic_owner/zenlogic_owner; production has no default (the web and gRPC processes need no owner).
DEV_OWNER_ROLE = "zenlogic_owner"
if not env("DATABASE_OWNER_URL") and not PRODUCTION:
    os.environ.setdefault("DATABASE_OWNER_URL", f"postgres://{DEV_OWNER_ROLE}:{DEV_OWNER_ROLE}@/")
_owner = dj_database_url.parse(env("DATABASE_OWNER_URL")) if env("DATABASE_OWNER_URL") else None
DATABASE_OWNER: dict[str, str] | None = (
    {"USER": _owner["USER"], "PASSWORD": _owner.get("PASSWORD") or ""}
    if _owner and _owner.get("USER")
    else None
)
DATABASE_APP_ROLE = DATABASES["default"].get("USER") or ""
# The database only lets a transaction see a tenant when its `app.tenant_id` setting carries this key's digest of
# the tenant (core.tenancy.scope_claim): a session that merely sets the setting sees nothing. `migrate` stores the
# key where only the owner role can read it; derived from SECRET_KEY, so a new SECRET_KEY needs a `migrate`.
TENANT_SCOPE_KEY = hmac.new(SECRET_KEY.encode(), b"zenlogic.tenant-scope.v1", hashlib.sha256).digest()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "core.User"

# --- Cache ----------------------------------------------------------------------------------------------------
# `make run` (config.launcher) sets REDIS_URL to its embedded Redis when none is configured; a bare process without
# it (e.g. `pytest` outside make) gets a per-process memory cache.
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", "zlcust"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "zlcust"}}

# --- Celery ---------------------------------------------------------------------------------------------------
# The broker is RabbitMQ in production, or the embedded Redis that `make run` starts when CELERY_BROKER_URL is
# unset (config.launcher sets it). The outbox relay publishes to either; without any broker (a bare process outside
# make) Celery gets an in-process queue, nothing kicks the relay and events wait in the outbox. The event consumer
# needs RabbitMQ (quorum queues, dead-lettering, per-message TTL): it runs only with an AMQP broker.
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
OUTBOX_RELAY_ENABLED = bool(CELERY_BROKER_URL)
BROKER_IS_AMQP = CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://"))
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True} if BROKER_IS_AMQP else {}
# A worker's node name must be unique on its broker (RabbitMQ locks `<name>.celery.pidbox` per name): by default
# `customer-service-<pid>@<host>`; set it per instance under a process manager (Celery's %h, %n, %d expand).
CELERY_WORKER_NAME = env("CELERY_WORKER_NAME")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Intervals of the periodic tasks that run more often than nightly (the schedules below read them).
OUTBOX_RELAY_INTERVAL_SECONDS = env_float("OUTBOX_RELAY_INTERVAL_SECONDS", 5.0)
CREDIT_HOLD_EXPIRY_INTERVAL_SECONDS = env_float("CREDIT_HOLD_EXPIRY_INTERVAL_SECONDS", 300.0)
LOYALTY_HOLD_EXPIRY_INTERVAL_SECONDS = env_float("LOYALTY_HOLD_EXPIRY_INTERVAL_SECONDS", 60.0)
CELERY_BEAT_SCHEDULE: dict = {}
# Each app declares its periodic tasks in `<app>/schedule.py` (no Django imports): a plain dict BEAT_SCHEDULE, or
# beat_schedule(settings) when it needs a tunable declared here.
for _app in ("core", "customers", "loyalty", "credit", "segmentation"):
    try:
        _schedule = importlib.import_module(f"{_app}.schedule")
        CELERY_BEAT_SCHEDULE.update(
            _schedule.beat_schedule(globals())
            if hasattr(_schedule, "beat_schedule")
            else _schedule.BEAT_SCHEDULE
        )
    except ModuleNotFoundError as _exc:
        if _exc.name != f"{_app}.schedule":
            raise
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")

# --- Authentication (the Auth Service owns it; we verify) -----------------------------------------------------
AUTH_VERIFIER = env("AUTH_VERIFIER", "jwt")  # "jwt" or "grpc"
DEV_JWT_SECRET = "dev-only-jwt-secret-not-for-production-use"  # noqa: S105 - public, refused in production
AUTH_JWT_SECRET = env("AUTH_JWT_SECRET", "" if PRODUCTION else DEV_JWT_SECRET)
AUTH_JWT_PUBLIC_KEY = env("AUTH_JWT_PUBLIC_KEY")
AUTH_JWT_ALGORITHMS = [a for a in env("AUTH_JWT_ALGORITHMS", "HS256").split(",") if a]
AUTH_JWT_ISSUER = env("AUTH_JWT_ISSUER")
AUTH_JWT_AUDIENCE = env("AUTH_JWT_AUDIENCE")
AUTH_GRPC_ADDRESS = env("AUTH_GRPC_ADDRESS", "localhost:50001")
AUTH_GRPC_TIMEOUT = float(env("AUTH_GRPC_TIMEOUT", "0.5"))
AUTH_CACHE_TTL = env_int("AUTH_CACHE_TTL", 30)
if PRODUCTION and AUTH_VERIFIER == "jwt" and not (AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY):
    raise ImproperlyConfigured("AUTH_VERIFIER=jwt needs AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY in production")
# RFC 7518 §3.2: an HS256 key has at least as many bytes as the hash (32); a shorter one can be brute-forced.
AUTH_JWT_SECRET_MIN_BYTES = 32
if (
    PRODUCTION
    and AUTH_JWT_SECRET
    and (AUTH_JWT_SECRET == DEV_JWT_SECRET or len(AUTH_JWT_SECRET.encode()) < AUTH_JWT_SECRET_MIN_BYTES)
):
    raise ImproperlyConfigured(
        f"APP_ENV=production needs its own AUTH_JWT_SECRET of at least {AUTH_JWT_SECRET_MIN_BYTES} bytes "
        "(not the development one)"
    )

# --- gRPC -----------------------------------------------------------------------------------------------------
# The module that wires the servicers into a server (build_server, worker_count); `grpcserver` imports it.
GRPC_SERVER_MODULE = "config.grpc_server"
GRPC_PORT = env_int("GRPC_PORT", 50007)
GRPC_MAX_WORKERS = env_int("GRPC_MAX_WORKERS", 8)
# server processes sharing the port (SO_REUSEPORT); 0: one per CPU this process may run on (one process serves
# about one core: the GIL). `worker_count` divides PostgreSQL's free connections among them.
GRPC_PROCESSES = env_int("GRPC_PROCESSES", 0)
# calls past the worker threads that wait for one; beyond them a call is refused with RESOURCE_EXHAUSTED at once
GRPC_MAX_QUEUED = env_int("GRPC_MAX_QUEUED", 32)
GRPC_GRACE_SECONDS = float(env("GRPC_GRACE_SECONDS", "8"))
ORDER_SERVICE_GRPC_ADDRESS = env("ORDER_SERVICE_GRPC_ADDRESS", "localhost:50003")

# --- REST -----------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["core.rest_auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["core.rest_auth.HasRequiredScopes"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.i18n.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "zenLogic Customer Service",
    "DESCRIPTION": "Customers, loyalty, commercial credit and segmentation, per business (tenant).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    },
    "SECURITY": [{"bearerAuth": []}],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.stated_constraints",
    ],
    # the API is JSON; the form parsers only serve the browsable API
    "PARSER_WHITELIST": ["core.parsers.BoundedJSONParser"],
    # one schema name per choice set that several fields share
    "ENUM_NAME_OVERRIDES": {
        "TierEnum": "loyalty.models.TierCode",
        "CustomerTypeEnum": "customers.models.CustomerType",
        "CustomerStatusEnum": "customers.models.CustomerStatus",
        "CustomerWritableStatusEnum": [("active", "active"), ("blocked", "blocked")],
        "CreditLineStatusEnum": "credit.models.CreditLineStatus",
        "CreditHoldStatusEnum": "credit.models.CreditHoldStatus",
        "CreditChargeStatusEnum": "credit.models.CreditChargeStatus",
        "TransactionTypeEnum": "loyalty.models.TransactionType",
        "AwardStatusEnum": "loyalty.models.AwardStatus",
        "StampRewardStatusEnum": "loyalty.models.StampRewardStatus",
        "CreditLedgerKindEnum": "credit.models.CreditLedgerKind",
        "StampEntryKindEnum": "loyalty.models.StampEntryKind",
        # the branches of a new customer's body (customers.api.CustomerInput.schema_one_of)
        "IndividualTypeEnum": ["individual"],
        "BusinessTypeEnum": ["business"],
    },
}

# --- HTTPS behind the load balancer (production defaults; `manage.py check --deploy` is clean with them) -------
# The service sits behind a TLS-terminating proxy; SECURE_PROXY_SSL_HEADER names the header it sets
# (e.g. HTTP_X_FORWARDED_PROTO, meaning "X-Forwarded-Proto: https"). Only set it if the proxy overwrites that header.
if env("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (env("SECURE_PROXY_SSL_HEADER"), "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
# health and metrics are scraped over plain HTTP inside the cluster
SECURE_REDIRECT_EXEMPT = [r"^health", r"^ready", r"^metrics"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SESSION_COOKIE_HTTPONLY = True

# --- i18n, static ---------------------------------------------------------------------------------------------
# English and Spanish (the businesses are in Latin America). Staff pick theirs in the admin (a cookie); API error
# messages follow Accept-Language, else the tenant's language, else English.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Logs: JSON lines with the request id ---------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.logs.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Service behaviour ----------------------------------------------------------------------------------------
REQUIRE_SERVICES = env_bool("REQUIRE_SERVICES")
OUTBOX_RETENTION_DAYS = env_int("OUTBOX_RETENTION_DAYS", 7)
CUSTOMER_CACHE_TTL = env_int("CUSTOMER_CACHE_TTL", 300)
CREDIT_OVERDUE_GRACE_DAYS = env_int("CREDIT_OVERDUE_GRACE_DAYS", 7)
CREDIT_HOLD_TTL_MINUTES = env_int("CREDIT_HOLD_TTL_MINUTES", 60)
# Points held for a sale between the quote and the payment: default and longest life of a hold.
LOYALTY_HOLD_TTL_SECONDS = env_int("LOYALTY_HOLD_TTL_SECONDS", 300)
LOYALTY_HOLD_MAX_SECONDS = env_int("LOYALTY_HOLD_MAX_SECONDS", 86_400)
SEGMENTATION_LOCAL_HOUR = env_int("SEGMENTATION_LOCAL_HOUR", 3)  # local hour of each tenant's nightly RFM run
SEGMENTATION_WORK_MEM = env("SEGMENTATION_WORK_MEM", "256MB")  # PostgreSQL work_mem of the RFM statement
SEGMENTATION_CACHE_BULK_THRESHOLD = env_int("SEGMENTATION_CACHE_BULK_THRESHOLD", 1000)
ORDER_SERVICE_TOKEN = env(
    "ORDER_SERVICE_TOKEN"
)  # bearer token of `backfill_history` calls, if the service wants one
GRPC_METRICS_PORT = env_int("GRPC_METRICS_PORT", 9107)  # 0: no metrics endpoint for the gRPC server

# Events consumed from other services (core.consumers); read when the consumer starts.
EVENTS_CONSUMER_ENABLED = env("EVENTS_CONSUMER_ENABLED", "1").strip().lower() not in {
    "0",
    "false",
    "no",
    "off",
}
EVENTS_QUEUE_PREFIX = env("EVENTS_QUEUE_PREFIX", "customer-service")
EVENTS_PREFETCH = env_int("EVENTS_PREFETCH", 10)
EVENTS_PARK_DELAY_SECONDS = env_float("EVENTS_PARK_DELAY_SECONDS", 30.0)
EVENTS_PARK_MAX_ATTEMPTS = env_int("EVENTS_PARK_MAX_ATTEMPTS", 20)
EVENTS_QUEUE_TYPE = env("EVENTS_QUEUE_TYPE", "quorum")  # or "classic"
EVENTS_DELIVERY_LIMIT = env_int("EVENTS_DELIVERY_LIMIT", 20)
EVENTS_DB_RETRY_MAX_SECONDS = env_float("EVENTS_DB_RETRY_MAX_SECONDS", 30.0)
EVENTS_DEDUPE_RETENTION_DAYS = env_int("EVENTS_DEDUPE_RETENTION_DAYS", 30)

# The outbox relay (core.relay).
OUTBOX_RELAY_BATCH_SIZE = env_int("OUTBOX_RELAY_BATCH_SIZE", 200)
OUTBOX_RELAY_MAX_BACKOFF_SECONDS = env_float("OUTBOX_RELAY_MAX_BACKOFF_SECONDS", 60.0)
OUTBOX_RELAY_CONNECT_TIMEOUT = env_float("OUTBOX_RELAY_CONNECT_TIMEOUT", 3.0)
OUTBOX_RELAY_CONFIRM_TIMEOUT = env_float("OUTBOX_RELAY_CONFIRM_TIMEOUT", 10.0)
OUTBOX_RELAY_TIME_BUDGET_SECONDS = env_float("OUTBOX_RELAY_TIME_BUDGET_SECONDS", 20.0)
