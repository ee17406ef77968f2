"""The project's tasks, with the project's settings: ``ferroq worker proj.tasks:app``.

Importing this module sets Django up (as Celery's ``proj/celery.py`` does), so the worker
process reads ``proj.settings`` and can use anything of Django a task needs.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
django.setup()

from django.conf import settings  # noqa: E402  (after setup, as Django requires)

from ferroq import App  # noqa: E402

app = App(settings.FERROQ["REDIS_URL"], default_queue=settings.FERROQ["QUEUE"])


@app.task
def send_welcome(email: str) -> str:
    return f"welcome mail from {settings.WELCOME_FROM} to {email}"
