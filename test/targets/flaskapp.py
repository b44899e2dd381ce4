# A small Flask app for the gunicorn test.  Lines tagged "# @v" are views.
from flask import Flask

app = Flask(__name__)


@app.route("/hello")
def hello():
    name = "world"  # @v
    return "hello %s" % name  # @v


@app.route("/never")
def never():
    return "not requested"  # @n
