# A WSGI application for the uWSGI test.  Lines tagged "# @v" serve requests;
# X-Pid tells the test which worker served one.
import os


def application(environ, start_response):
    body = ("hello %s" % environ["PATH_INFO"]).encode()  # @v
    start_response("200 OK", [("Content-Type", "text/plain"),  # @v
                              ("X-Pid", str(os.getpid()))])
    return [body]  # @v
