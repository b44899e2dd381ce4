import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoapp.settings")
application = get_wsgi_application()

from django.db import connection  # noqa: E402
from django.db.utils import OperationalError  # noqa: E402

from .models import Visit  # noqa: E402

# Both workers import this at once: the one that loses the race to create
# the table finds it made (without this, a worker failed to boot now and
# then and gunicorn shut down under the test)
if Visit._meta.db_table not in connection.introspection.table_names():
    try:
        with connection.schema_editor() as editor:
            editor.create_model(Visit)
    except OperationalError:
        if Visit._meta.db_table not in connection.introspection.table_names():
            raise
