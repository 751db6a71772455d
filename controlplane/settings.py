"""Settings, read from the environment (12-factor). Unset means the embedded default:
SQLite for the database and the MLflow registry, a SQLite-backed Celery broker, all under ``var/``.
See ``.env.example`` for every variable.
"""

from __future__ import annotations

import re
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import env_bool, env_int, env_list, env_renamed, env_secret, env_str, parse_mapping

BASE_DIR = Path(__file__).resolve().parent.parent
# The scoring server package: the deploy pipeline builds its images and runs it as the local target.
SCORING_IMAGE_DIR = BASE_DIR / "scoring-image"
if str(SCORING_IMAGE_DIR) not in sys.path:
    sys.path.append(str(SCORING_IMAGE_DIR))
VAR_DIR = Path(env_str("MODELPLANE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _embedded_secret_key() -> str:
    """A random key kept in var/ so sessions survive restarts of the embedded default."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# ---------------------------------------------------------------------------- Django core
SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or _embedded_secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.common",
    "apps.accounts",
    "apps.registry",
    "apps.deployments",
    "apps.promotions",
    "apps.monitoring",
    "apps.alerts",
    "apps.events",
    "apps.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Before WhiteNoise, so static files are sent with the security headers too.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.accounts.request_context.RequestContextMiddleware",
    "apps.accounts.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.common.middleware.ApplicationErrorMiddleware",
    # Last, as django-axes asks: turns a refused (locked-out) login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "apps" / "common" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.common.context_processors.product",
                "apps.accounts.context_processors.navigation",
                "apps.alerts.context_processors.firing_alerts",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_secret("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'controlplane.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # A kept connection is checked before a request reuses it: one that PostgreSQL closed meanwhile (a restart,
        # a terminated backend, an idle timeout) is replaced instead of failing the request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default takes concurrent writers (several web threads and the worker): write-ahead logging so
    # readers never block the writer, and every transaction takes the write lock at BEGIN (IMMEDIATE), waiting up
    # to SQLITE_BUSY_TIMEOUT seconds for it, instead of failing "database is locked" when two upgrade at once.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT", 20),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        **DATABASES["default"].get("OPTIONS", {}),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "registry:model_list"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

CACHES = {
    "default": (
        # Degrades to no cache while Redis is down (apps/common/cache.py): pages and sign-in keep working.
        {"BACKEND": "apps.common.cache.DegradingRedisCache", "LOCATION": env_str("REDIS_URL")}
        if env_str("REDIS_URL")
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# ---------------------------------------------------------------------------- security
# docs/security.md explains each of these. A deployment is told apart from the embedded default (`make run`
# and the tests, plain HTTP on 127.0.0.1, a key generated in var/) by being given DJANGO_SECRET_KEY: it then
# gets secure cookies unless it says otherwise.
_DEPLOYED = bool(env_secret("DJANGO_SECRET_KEY")) and not DEBUG
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"  # one query less on every page
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_COOKIE_AGE", 12 * 3600)  # seconds; a working day, then sign in again
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", _DEPLOYED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # the kubelet probes over plain HTTP
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY") else None
# Preloading is a decision for the owner of the parent domain (hstspreload.org), not for one application.
SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Content-Security-Policy on every response (django-csp): scripts only from our own origin, never inline
# (pages hand data to scripts in <script type="application/json"> blocks, which are not executed). Styles
# allow inline attributes: Plotly and Swagger UI set them from script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed local logins for one username from one
# address, that pair is refused for AXES_COOLOFF_TIME; each refusal is in the audit trail.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out username+address before any check
    "apps.accounts.oidc.LocalPasswordBackend",  # username and password, unless LOCAL_LOGIN_ENABLED is off
    "apps.accounts.oidc.OidcBackend",  # users signed in through OpenID Connect (apps/accounts/oidc_views.py)
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "apps.accounts.throttling.lockout_response"
AXES_CLIENT_IP_CALLABLE = "apps.accounts.throttling.client_ip"
AXES_VERBOSE = False

# Single sign-on with OpenID Connect (Microsoft Entra ID, or any provider with a discovery document).
# Off unless OIDC_CLIENT_ID and an issuer (OIDC_ISSUER, or OIDC_TENANT_ID for Entra) are set.
OIDC_TENANT_ID = env_str("OIDC_TENANT_ID")
OIDC_ISSUER = env_str("OIDC_ISSUER") or (
    f"https://login.microsoftonline.com/{OIDC_TENANT_ID}/v2.0" if OIDC_TENANT_ID else ""
)
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = env_secret("OIDC_CLIENT_SECRET")
OIDC_SCOPES = env_str("OIDC_SCOPES", "openid profile email")
OIDC_USERNAME_CLAIM = env_str("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
# "<group>=<role>" or "<group>=<role>@<environment>", comma-separated: a global role or a per-environment grant.
OIDC_GROUP_ROLES = env_list("OIDC_GROUP_ROLES")
for _entry in OIDC_GROUP_ROLES:
    if not re.fullmatch(r"[^=@]+=(viewer|lead|reviewer|admin)(@[^=@]+)?", _entry):
        raise ImproperlyConfigured(f"OIDC_GROUP_ROLES entry {_entry!r}: use <group>=<role> or <group>=<role>@<env>")
OIDC_DEFAULT_ROLE = env_str("OIDC_DEFAULT_ROLE", "viewer")  # for a user no group maps; empty: refuse them
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "Microsoft")  # the button says "Sign in with <name>"
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10)  # seconds for each call to the provider
# The username/password form (and the admin's): turn it off once everyone signs in through SSO.
LOCAL_LOGIN_ENABLED = env_bool("LOCAL_LOGIN_ENABLED", True)

# ---------------------------------------------------------------------------- REST API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.common.parsers.JSONParser"],  # JSON nested at most json_input.MAX_DEPTH
    "DEFAULT_SCHEMA_CLASS": "apps.common.api.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps.common.paging.Pagination",
    "PAGE_SIZE": 25,
    "EXCEPTION_HANDLER": "apps.common.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Modelplane API",
    "DESCRIPTION": "Browse the MLflow registry, deploy model versions, approve promotions, read monitoring series.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status"; name each choice set after its owner.
    "ENUM_NAME_OVERRIDES": {
        "DeploymentStatusEnum": "apps.deployments.choices.DeploymentStatus",
        "RevisionStatusEnum": "apps.deployments.choices.RevisionStatus",
        "StepStatusEnum": "apps.deployments.choices.StepStatus",
        "PromotionStatusEnum": "apps.promotions.choices.PromotionStatus",
        "SloKindEnum": "apps.alerts.choices.SloKind",
        "RevisionKindEnum": "apps.deployments.choices.RevisionKind",
        "AlertStateEnum": "apps.alerts.choices.AlertState",
        "AlertMetricEnum": "apps.alerts.choices.Metric",
        "ChannelKindEnum": "apps.events.choices.ChannelKind",
        "DeliveryStatusEnum": "apps.events.choices.DeliveryStatus",
    },
}

# ---------------------------------------------------------------------------- Celery
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = (
    env_secret("CELERY_BROKER_URL") or REDIS_URL or f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_RESULT_BACKEND = None  # progress lives on our own rows, never in a result backend
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 1800)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 1900)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker outlives a broker restart: it reconnects for as long as it takes (None: no limit), instead of
# exiting with "Unrecoverable error" after the default 100 tries. The container restart policy is the backstop.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 4)
# A web request that publishes while the broker is down fails fast (the row stays queued; requeue_stuck sends it).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# ---------------------------------------------------------------------------- MLflow registry
# Any URI MLflow accepts: sqlite:///..., http(s)://tracking-server, databricks, databricks-uc.
MLFLOW_TRACKING_URI = env_str("MLFLOW_TRACKING_URI") or f"sqlite:///{VAR_DIR / 'mlflow.sqlite3'}"
MLFLOW_REGISTRY_URI = env_str("MLFLOW_REGISTRY_URI") or MLFLOW_TRACKING_URI
MLFLOW_ARTIFACT_ROOT = env_str("MLFLOW_ARTIFACT_ROOT", str(VAR_DIR / "mlartifacts"))
# Link target for "source run"; defaults to the tracking URI when it is a web server.
MLFLOW_UI_URL = env_str("MLFLOW_UI_URL")
# How long registry reads may take before the page says the registry is unreachable.
MLFLOW_HTTP_TIMEOUT = env_int("MLFLOW_HTTP_REQUEST_TIMEOUT", 10)
MLFLOW_HTTP_RETRIES = env_int("MLFLOW_HTTP_REQUEST_MAX_RETRIES", 1)  # in a Celery worker
MLFLOW_HTTP_PAGE_RETRIES = env_int("MLFLOW_HTTP_PAGE_RETRIES", 0)  # in a page request: a person is waiting
# After this many timed-out registry calls in a row, pages answer 503 at once for REGISTRY_BREAKER_SECONDS.
REGISTRY_BREAKER_TIMEOUTS = env_int("REGISTRY_BREAKER_TIMEOUTS", 3)
REGISTRY_BREAKER_SECONDS = env_int("REGISTRY_BREAKER_SECONDS", 30)
REGISTRY_PAGE_SIZE = env_int("REGISTRY_PAGE_SIZE", 25)
# Databricks: how long one registry call may keep retrying (429/503, honouring Retry-After) in a page
# request, and in a Celery worker. MLflow's own default is 500 s.
DATABRICKS_RETRY_SECONDS = env_int("DATABRICKS_RETRY_SECONDS", 15)
DATABRICKS_WORKER_RETRY_SECONDS = env_int("DATABRICKS_WORKER_RETRY_SECONDS", 120)
REGISTRY_MODEL_CACHE_SECONDS = env_int("REGISTRY_MODEL_CACHE_SECONDS", 30)  # aliases/tags of listed UC models
REGISTRY_CACHE_SECONDS = env_int("REGISTRY_CACHE_SECONDS", 300)

# ---------------------------------------------------------------------------- deployments
# Settings of the deployment targets and image builders; each is read only by the backend that uses it.
DEPLOY_LOCAL_DIR = Path(env_str("DEPLOY_LOCAL_DIR", str(VAR_DIR / "local-target")))
DEPLOY_MODEL_CACHE = Path(env_str("DEPLOY_MODEL_CACHE", str(VAR_DIR / "models")))
TELEMETRY_DIR = Path(env_str("TELEMETRY_DIR", str(VAR_DIR / "telemetry")))
# The scoring image's base (a build argument): mirror it into your own registry for air-gapped builds.
SCORING_BASE_IMAGE = env_str("SCORING_BASE_IMAGE", "python:3.11-slim-bookworm")
# A rollout fails when it makes no progress (a pod created, ready or removed) for DEPLOY_PROGRESS_DEADLINE seconds
# (Kubernetes' progressDeadlineSeconds), or when it takes longer than DEPLOY_READY_TIMEOUT in all; 0 derives that
# limit from the replicas replaced one at a time (targets.base.rollout_time_limit).
DEPLOY_PROGRESS_DEADLINE = env_int("DEPLOY_PROGRESS_DEADLINE", 600)
DEPLOY_READY_TIMEOUT = env_int("DEPLOY_READY_TIMEOUT", 0)
# "Test this endpoint" (deployment page, POST /api/v1/deployments/<id>/test/): seconds the control plane waits
# for the model's answer.
DEPLOY_TEST_TIMEOUT = env_int("DEPLOY_TEST_TIMEOUT", 10)
# A worker renews its revision's lease every quarter lease; a dead one stops, and every DEPLOY_REQUEUE_SECONDS the
# beat hands revisions with a lapsed lease to another worker: a killed worker's rollout resumes within about
# DEPLOY_LEASE_SECONDS + DEPLOY_REQUEUE_SECONDS.
DEPLOY_LEASE_SECONDS = env_int("DEPLOY_LEASE_SECONDS", 10)
DEPLOY_REQUEUE_SECONDS = env_int("DEPLOY_REQUEUE_SECONDS", 5)
DEPLOY_STUCK_QUEUED_SECONDS = env_int("DEPLOY_STUCK_QUEUED_SECONDS", 120)  # queued this long: message lost
# Every DEPLOY_RECONCILE_SECONDS the beat restarts local scoring processes of live deployments that died.
DEPLOY_RECONCILE_SECONDS = env_int("DEPLOY_RECONCILE_SECONDS", 30)
# A progressive rollout (canary, blue-green, shadow) looks at its controls (pause, promote, abort) and its interval's
# end this often.
ROLLOUT_TICK_SECONDS = float(env_str("ROLLOUT_TICK_SECONDS", "1"))
KUBERNETES_API_URL = env_str("KUBERNETES_API_URL")
KUBERNETES_TOKEN = env_secret("KUBERNETES_TOKEN")
KUBERNETES_CA_CERT = env_str("KUBERNETES_CA_CERT")
KUBECONFIG = env_str("KUBECONFIG")
KUBERNETES_CONTEXT = env_str("KUBERNETES_CONTEXT")  # the kubeconfig's context (default: its current context)
KUBERNETES_VERIFY_SSL = env_bool("KUBERNETES_VERIFY_SSL", True)
# The clusters environments may name (Environment.cluster; apps/deployments/clusters.py, docs/deploy-aks.md): a YAML
# or JSON mapping of name -> {auth: in_cluster|kubeconfig|token|workload_identity, ...}, inline or read from the file
# KUBERNETES_CLUSTERS_FILE. An environment with no cluster uses the settings above (the default cluster).
KUBERNETES_CLUSTERS = parse_mapping(env_secret("KUBERNETES_CLUSTERS"), "KUBERNETES_CLUSTERS")
KUBERNETES_ENDPOINT_TEMPLATE = env_str(
    "KUBERNETES_ENDPOINT_TEMPLATE", "http://{deployment}.{namespace}.svc.cluster.local"
)
KUBERNETES_IMAGE_PULL_SECRETS = env_list("KUBERNETES_IMAGE_PULL_SECRETS")
# Progressive rollouts through Gateway API (docs/deploy-aks.md, "Traffic splitting on Kubernetes"): what each
# deployment's HTTPRoute matches on the environment's Gateway, and the one URL clients use (default: the Service's).
KUBERNETES_ROUTE_PATH_TEMPLATE = env_str("KUBERNETES_ROUTE_PATH_TEMPLATE", "/{namespace}/{deployment}")
KUBERNETES_ROUTE_HOSTNAME_TEMPLATE = env_str("KUBERNETES_ROUTE_HOSTNAME_TEMPLATE")
KUBERNETES_STABLE_URL_TEMPLATE = env_str("KUBERNETES_STABLE_URL_TEMPLATE")

# --- deployment targets
# Keyword options of each deployment target (apps/deployments/targets/), used only by the target an environment
# selects, the way IMAGE_BUILDER_OPTIONS are for image builders.
DEPLOY_TARGET_OPTIONS = {
    "local": {},  # serves from DEPLOY_LOCAL_DIR and writes telemetry to TELEMETRY_DIR
    "kubernetes": {
        "api_url": KUBERNETES_API_URL,
        "token": KUBERNETES_TOKEN,
        "ca_cert": KUBERNETES_CA_CERT,
        "kubeconfig": KUBECONFIG,
        "context": KUBERNETES_CONTEXT,
        "verify_ssl": KUBERNETES_VERIFY_SSL,
        "endpoint_url_template": KUBERNETES_ENDPOINT_TEMPLATE,
        "image_pull_secrets": KUBERNETES_IMAGE_PULL_SECRETS,
        "route_path_template": KUBERNETES_ROUTE_PATH_TEMPLATE,
        "route_hostname_template": KUBERNETES_ROUTE_HOSTNAME_TEMPLATE,
        "stable_url_template": KUBERNETES_STABLE_URL_TEMPLATE,
        # How long a traffic step waits for the Gateway's controller to accept the HTTPRoute it applied.
        "route_accept_timeout_seconds": env_int("KUBERNETES_ROUTE_ACCEPT_TIMEOUT_SECONDS", 30),
        # Pods the scheduler cannot place fail after this long unless the cluster autoscaler triggered a scale-up.
        "unschedulable_grace_seconds": env_int("KUBERNETES_UNSCHEDULABLE_GRACE_SECONDS", 180),
        # Image pulls are retried by the kubelet (ACR throttling, role propagation): fail once they kept failing.
        "image_pull_grace_seconds": env_int("KUBERNETES_IMAGE_PULL_GRACE_SECONDS", 180),
    },
}

# --- image builders
# Keyword options of each image builder (apps/deployments/builders/), used only by the builder an environment
# selects: the ACR settings are needed only once an environment builds with "acr".
IMAGE_BUILDER_OPTIONS = {
    "local": {
        "tool": env_str("IMAGE_BUILD_TOOL", "buildah"),  # buildah, podman or docker (a name or a path)
        "tls_verify": env_bool("IMAGE_REGISTRY_TLS_VERIFY", True),
        "insecure_registries": env_list("IMAGE_REGISTRY_INSECURE"),  # hosts spoken to over plain HTTP
        "username": env_str("IMAGE_REGISTRY_USERNAME"),
        "password": env_secret("IMAGE_REGISTRY_PASSWORD"),
        "pull": env_str("IMAGE_BUILD_PULL", "missing"),  # base image pull policy: missing, always or never
        "pip_cache": env_str("IMAGE_BUILD_PIP_CACHE"),  # a host directory kept as pip's cache between builds
        "root": env_str("IMAGE_BUILD_STORAGE_ROOT"),  # a container storage of the builder's own
        "runroot": env_str("IMAGE_BUILD_STORAGE_RUNROOT"),
        "storage_driver": env_str("IMAGE_BUILD_STORAGE_DRIVER"),
        "timeout": env_int("IMAGE_BUILD_TIMEOUT", 3600),
    },
    "acr": {
        "subscription_id": env_str("AZURE_SUBSCRIPTION_ID"),
        "resource_group": env_str("ACR_RESOURCE_GROUP"),
        "registry_name": env_str("ACR_REGISTRY_NAME"),  # the registry resource's name, e.g. "modelplane"
        "arm_endpoint": env_str("AZURE_RESOURCE_MANAGER_URL", "https://management.azure.com"),
        "timeout": env_int("IMAGE_BUILD_TIMEOUT", 3600),
    },
    "buildah": {  # a build pod (buildah) in the cluster of the kubernetes target; replaced "kaniko"
        "api_url": KUBERNETES_API_URL,
        "token": KUBERNETES_TOKEN,
        "ca_cert": KUBERNETES_CA_CERT,
        "kubeconfig": KUBECONFIG,
        "namespace": env_str("BUILD_POD_NAMESPACE", "modelplane-builds"),  # Pod Security "baseline" (buildah.py)
        "context_pvc": env_str("BUILD_POD_CONTEXT_PVC"),  # a claim the build pod mounts at /workspace ...
        "context_dir": env_str("BUILD_POD_CONTEXT_DIR"),  # ... and where this worker sees the same volume
        "buildah_image": env_str("BUILD_POD_IMAGE", "quay.io/buildah/stable:v1.42.2"),
        "service_account": env_str("BUILD_POD_SERVICE_ACCOUNT"),
        # Push to ACR with Azure workload identity (no password): the pod is labelled for the webhook.
        "workload_identity": env_bool("BUILD_POD_WORKLOAD_IDENTITY", False),
        "registry_secret": env_str("BUILD_POD_REGISTRY_SECRET"),  # else a dockerconfigjson Secret to push with
        "pending_timeout": env_int("BUILD_POD_PENDING_TIMEOUT", 300),  # seconds Pending before the build fails
        "scale_up_timeout": env_int("BUILD_POD_SCALE_UP_TIMEOUT", 900),  # ... while the autoscaler adds a node
        "tls_verify": env_bool("IMAGE_REGISTRY_TLS_VERIFY", True),
        "insecure_registries": env_list("IMAGE_REGISTRY_INSECURE"),
        "username": env_str("IMAGE_REGISTRY_USERNAME"),
        "password": env_secret("IMAGE_REGISTRY_PASSWORD"),
        "timeout": env_int("IMAGE_BUILD_TIMEOUT", 3600),
    },
}
# The kaniko builder's settings were renamed with it: a deployment still setting them is told so at start-up.
env_renamed(
    {
        "KANIKO_NAMESPACE": "BUILD_POD_NAMESPACE",
        "KANIKO_CONTEXT_PVC": "BUILD_POD_CONTEXT_PVC",
        "KANIKO_CONTEXT_DIR": "BUILD_POD_CONTEXT_DIR",
        "KANIKO_IMAGE": "BUILD_POD_IMAGE",
        "KANIKO_REGISTRY_SECRET": "BUILD_POD_REGISTRY_SECRET",
        "KANIKO_SERVICE_ACCOUNT": "BUILD_POD_SERVICE_ACCOUNT",
    },
    why="the kaniko image builder was replaced by buildah (docs/deploy-aks.md, 'In-cluster builds')",
)
# --- end image builders

# --- alerts (docs/alerts.md)
ALERTS_EVALUATE_SECONDS = env_int("ALERTS_EVALUATE_SECONDS", 60)  # how often beat evaluates every rule
# A rule with fewer requests in its window (a burn-rate pair: in its long window) does not decide.
ALERTS_MIN_REQUESTS = env_int("ALERTS_MIN_REQUESTS", 100)
# An open alert resolves once its condition stayed clear this long (a rule may set its own).
ALERTS_RESOLVE_AFTER_SECONDS = env_int("ALERTS_RESOLVE_AFTER_SECONDS", 300)

# --- notifications and events (apps/events, docs/events.md)
# Private and loopback URLs, and plain http, are refused for channels unless this is on (the embedded default
# and the tests post to 127.0.0.1); a deployment (DJANGO_SECRET_KEY set) gets https to public addresses only.
EVENTS_ALLOW_PRIVATE_URLS = env_bool("EVENTS_ALLOW_PRIVATE_URLS", not _DEPLOYED)
EVENTS_HTTP_TIMEOUT = env_int("EVENTS_HTTP_TIMEOUT", 10)  # seconds per attempt
EVENTS_DELIVERY_ATTEMPTS = env_int("EVENTS_DELIVERY_ATTEMPTS", 8)  # then the delivery is failed (Resend remains)
EVENTS_RETRY_BASE_SECONDS = float(env_str("EVENTS_RETRY_BASE_SECONDS", "10"))  # doubles per attempt
EVENTS_RETRY_MAX_SECONDS = float(env_str("EVENTS_RETRY_MAX_SECONDS", "1800"))
EVENTS_REGISTRY_POLL_SECONDS = env_int("EVENTS_REGISTRY_POLL_SECONDS", 60)
EVENTS_LINK_BASE_URL = env_str("EVENTS_LINK_BASE_URL")  # e.g. https://modelplane.example.com: links in messages
# Email channels use Django's email backend: the console (the worker's log) unless an SMTP host is set.
EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if env_str("DJANGO_EMAIL_HOST")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("DJANGO_EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("DJANGO_EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "modelplane@localhost")

CELERY_BEAT_SCHEDULE = {
    # Re-enqueue revisions whose message was lost (broker restart) or whose worker died mid-rollout.
    # A run not picked up within its period is dropped (expires): a busy worker does not pile them up.
    "requeue-stuck-revisions": {
        "task": "deployments.requeue_stuck",
        "schedule": float(DEPLOY_REQUEUE_SECONDS),
        "options": {"expires": float(DEPLOY_REQUEUE_SECONDS)},
    },
    # Restart local scoring processes that died (the embedded default's "controller").
    "reconcile-local-deployments": {"task": "deployments.reconcile_local", "schedule": float(DEPLOY_RECONCILE_SECONDS)},
    "worker-heartbeat": {"task": "common.heartbeat", "schedule": 60.0},
    # Pending promotion requests older than their environment's max_age_hours become expired.
    "expire-stale-promotions": {"task": "promotions.expire_stale", "schedule": 600.0},
    # Approved promotions whose execution failed (registry down, a rollout in progress) are retried.
    "execute-approved-promotions": {"task": "promotions.execute_approved", "schedule": 60.0},
    # One evaluation pass of every alert rule (apps/alerts); a pass not started within its period is dropped.
    "evaluate-alerts": {
        "task": "alerts.evaluate",
        "schedule": float(ALERTS_EVALUATE_SECONDS),
        "options": {"expires": float(ALERTS_EVALUATE_SECONDS)},
    },
    # New model versions and moved aliases in MLflow, which has no push (apps/events/registry_poll.py).
    "poll-registry-events": {
        "task": "events.poll_registry",
        "schedule": float(EVENTS_REGISTRY_POLL_SECONDS),
        "options": {"expires": float(EVENTS_REGISTRY_POLL_SECONDS)},
    },
    # Deliveries whose task was lost (broker outage when queued) are queued again; sending stays once.
    "requeue-deliveries": {"task": "events.requeue_deliveries", "schedule": 300.0, "options": {"expires": 300.0}},
}
CELERY_TASK_ROUTES = {"deployments.*": {"queue": env_str("CELERY_DEPLOY_QUEUE", "celery")}}

# --- monitoring
# Where latency and drift aggregates come from (apps/monitoring/sources/): "local" reads the JSONL telemetry
# files of the local target (TELEMETRY_DIR); "azure_monitor" queries a Log Analytics workspace with KQL.
TELEMETRY_SOURCE = env_str("TELEMETRY_SOURCE", "local")
if TELEMETRY_SOURCE not in ("local", "azure_monitor"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"TELEMETRY_SOURCE={TELEMETRY_SOURCE!r}: use local or azure_monitor")
TELEMETRY_SOURCE_OPTIONS = {
    "local": {},  # reads TELEMETRY_DIR, where the local target writes
    "azure_monitor": {  # read (and required) only when TELEMETRY_SOURCE=azure_monitor
        "workspace_id": env_str("AZURE_LOG_ANALYTICS_WORKSPACE_ID"),
        "endpoint": env_str("AZURE_LOG_ANALYTICS_ENDPOINT", "https://api.loganalytics.io"),
        "table": env_str("TELEMETRY_AZURE_TABLE", "ContainerLogV2"),
        "message_column": env_str("TELEMETRY_AZURE_MESSAGE_COLUMN", "LogMessage"),
        "time_column": env_str("TELEMETRY_AZURE_TIME_COLUMN", "TimeGenerated"),
        "source_column": env_str("TELEMETRY_AZURE_SOURCE_COLUMN", "LogSource"),  # empty: no stdout filter
        "namespace_column": env_str("TELEMETRY_AZURE_NAMESPACE_COLUMN", "PodNamespace"),  # empty: no filter
        "timeout": env_int("TELEMETRY_AZURE_TIMEOUT", 60),
    },
}
MONITORING_PSI_WARN = float(env_str("MONITORING_PSI_WARN", "0.1"))
MONITORING_PSI_ALERT = float(env_str("MONITORING_PSI_ALERT", "0.25"))
MONITORING_BASELINE_BINS = env_int("MONITORING_BASELINE_BINS", 10)  # quantile bins per numeric feature
MONITORING_BASELINE_TOP_K = env_int("MONITORING_BASELINE_TOP_K", 10)  # categories kept before "other"
MONITORING_MIN_ROWS = env_int("MONITORING_MIN_ROWS", 100)  # fewer sampled rows: PSI is too noisy to judge
MONITORING_BASELINE_MAX_UPLOAD_BYTES = env_int("MONITORING_BASELINE_MAX_UPLOAD_BYTES", 100 * 2**20)  # baseline files
MONITORING_BASELINE_MAX_ROWS = env_int("MONITORING_BASELINE_MAX_ROWS", 1_000_000)  # rows a baseline file may decode to
# A baseline file with more rows is profiled from a random sample of this many (plenty for deciles and top-k).
MONITORING_BASELINE_SAMPLE_ROWS = env_int("MONITORING_BASELINE_SAMPLE_ROWS", 100_000)
# Baseline files larger than this are stored and parsed by a worker (the upload answers 202 with a status to poll).
MONITORING_BASELINE_INLINE_BYTES = env_int("MONITORING_BASELINE_INLINE_BYTES", 5 * 2**20)
MONITORING_BASELINE_MAX_DECODED_BYTES = env_int("MONITORING_BASELINE_MAX_DECODED_BYTES", 512 * 2**20)  # and memory
# The share of scoring requests whose input rows and predictions are in their telemetry line (what drift is computed
# from). The control plane passes it to every scoring server it starts; a change applies from the next deploy.
# The demo traffic of `make run` (scripts/run.sh turns it on; DEMO_TRAFFIC=false there turns it off): a live dev
# deployment of the demo credit model and bounded, labelled requests with a drift episode. Never in a deployed
# control plane (one given DJANGO_SECRET_KEY), whatever the variable says.
DEMO_TRAFFIC = env_bool("DEMO_TRAFFIC", False) and not _DEPLOYED
SCORING_TELEMETRY_SAMPLE_RATE = float(env_str("SCORING_TELEMETRY_SAMPLE_RATE", "0.01"))
if not 0.0 <= SCORING_TELEMETRY_SAMPLE_RATE <= 1.0:
    raise ImproperlyConfigured(f"SCORING_TELEMETRY_SAMPLE_RATE={SCORING_TELEMETRY_SAMPLE_RATE}: use 0 to 1")
# --- end monitoring

# ---------------------------------------------------------------------------- logging
# Every record is redacted as it is created: no secret setting, URI credential or token reaches a log line.
LOGGING_CONFIG = "controlplane.logging_redaction.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes logs every successful login and reset at INFO; lockouts are in the audit trail.
    "loggers": {"alembic": {"level": "WARNING"}, "mlflow": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
