# A WSGI script as mod_wsgi loads it: not a .py module, executed as source
# under a module name of the server's.  Lines tagged "# @i" run at load.
import os  # @i

GREETING = "hello"  # @i


def application(environ, start_response):  # @i
    body = ("%s %s" % (GREETING, environ.get("PATH_INFO", "/"))).encode()  # @v
    start_response("200 OK", [("Content-Length", str(len(body)))])  # @v
    return [body]  # @v


if os.environ.get("NEVER_SET_COVINJECT"):  # @i
    GREETING = "never"
