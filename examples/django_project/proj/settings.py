"""Settings of the example Django project (the minimum a view and a task need)."""

import os

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
ROOT_URLCONF = "proj.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# Read by proj/tasks.py: the worker uses the same settings as the web process.
FERROQ = {
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "QUEUE": "django",
}
WELCOME_FROM = "hello@example.com"
