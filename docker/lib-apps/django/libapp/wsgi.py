"""The WSGI entry point gunicorn serves (`gunicorn libapp.wsgi`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "libapp.settings")
application = get_wsgi_application()
