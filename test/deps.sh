#!/bin/sh
# What `make test` and `make demo` need beyond the build: a python3 with
# coverage.py.  As root on Debian, install it; otherwise name it.
PY=${1:-/usr/bin/python3}
if [ -x "$PY" ] && "$PY" -c 'import coverage' 2>/dev/null; then
	exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing python3 and python3-coverage (Debian packages)..."
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq python3 python3-coverage >/dev/null &&
		exit 0
fi
echo "covinject: needs $PY with coverage.py: install the Debian packages python3 and python3-coverage (apt-get install python3 python3-coverage)" >&2
exit 1
