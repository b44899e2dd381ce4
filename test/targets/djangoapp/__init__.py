# A small Django project for the gunicorn + Django test: a view that uses the
# ORM, a middleware, sqlite in the file $COVINJECT_DJANGO_DB.
