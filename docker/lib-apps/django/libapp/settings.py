"""A small Django project on the real session and CSRF machinery, for sessionstorm.

Sessions use Django's cache backend (`django.contrib.sessions.backends.cache`); the
environment picks the cache behind it:

- SESSION_MODE=redis  : django-redis at SESSION_STORE (`redis://host:port`), shared by
                        every process of every replica (the correct configuration);
- SESSION_MODE=locmem : Django's default LocMemCache, one per process (a configuration
                        people really deploy: it works on one process and loses
                        sessions as soon as there are several).

SECRET_KEY comes from the environment so every replica shares it. No database.
"""

import os

MODE = os.environ.get("SESSION_MODE", "redis")
if MODE not in ("redis", "locmem"):
    raise SystemExit(f"django app: SESSION_MODE must be redis or locmem, not {MODE!r}")

SECRET_KEY = os.environ.get("SECRET_KEY", "sessionstorm-demo-key-shared-by-every-replica")
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "libapp.urls"
WSGI_APPLICATION = "libapp.wsgi.application"
INSTALLED_APPS = []
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
DATABASES = {}
USE_I18N = False
USE_TZ = True
LOGIN_URL = "/accounts/login/"

SESSION_ENGINE = "django.contrib.sessions.backends.cache"
if MODE == "redis":
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ.get("SESSION_STORE", "redis://127.0.0.1:6379"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
}
