#!/bin/sh
# sid-root.sh DIR: a Debian sid root in DIR with CPython 3.14 and 3.15,
# coverage.py 7.x, gunicorn and Flask, for the end-to-end tests on the
# interpreters Debian 12 does not have (test/pythons.py runs them).
#
# DIR/.covinject-root records the debootstrap command that built it: a root
# whose record matches is reused as it is (a build takes a minute or two and
# about 350 MB); any other is rebuilt into DIR.new, then moved into place,
# so an interrupted build never leaves a half root at DIR.
set -eu
dir=${1:?usage: sid-root.sh DIR}
mirror=${SID_MIRROR:-http://deb.debian.org/debian}
pkgs=python3.14,python3.15,python3-coverage,gunicorn,python3-flask
want="debootstrap --variant=minbase --include=$pkgs sid"

if [ -f "$dir/.covinject-root" ] && [ "$(cat "$dir/.covinject-root")" = "$want" ]; then
	echo "sid-root: $dir is up to date ($want)"
	exit 0
fi
if ! command -v debootstrap >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
	else
		echo "sid-root: needs debootstrap (apt-get install debootstrap)" >&2
		exit 1
	fi
fi
echo "sid-root: building $dir ($want; log in $dir.log)"
rm -rf "$dir.new"
mkdir -p "$(dirname "$dir")"
if ! debootstrap --variant=minbase --include=$pkgs sid "$dir.new" "$mirror" \
		>"$dir.log" 2>&1; then
	tail -20 "$dir.log" >&2
	echo "sid-root: debootstrap failed (log in $dir.log)" >&2
	exit 1
fi
echo "$want" >"$dir.new/.covinject-root"
rm -rf "$dir"
mv "$dir.new" "$dir"
echo "sid-root: $dir built: $(chroot "$dir" sh -c 'python3.14 -V; python3.15 -V' | tr '\n' ' ')"
