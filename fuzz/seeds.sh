#!/bin/sh
# seeds.sh DIR CC - write the seed corpus of each fuzz/ harness under DIR/NAME,
# from this machine at fuzz time (no binary file is kept in the tree): the
# real libc and a tiny shared object built from fuzz/tiny.c, lines of a
# real /proc/PID/maps, real /proc/PID/status and /proc/PID/stat texts, and
# configuration texts as cli/start.c writes them.
set -eu
dir=$1
cc=$2
here=$(dirname "$0")
rm -rf "$dir"
mkdir -p "$dir/elf_lookup" "$dir/maps_line" "$dir/proc_status" \
	"$dir/stat_ppid" "$dir/config_parse"

# ELF: libc as mapped in this shell, and a 5 kB one with versioned names.
libc=$(awk '$6 ~ /\/libc[.-][^\/]*$/ { print $6; exit }' /proc/self/maps)
cp "$libc" "$dir/elf_lookup/libc"
"$cc" -shared -nostdlib -fPIC -O2 -s -Wl,-z,noseparate-code \
	-Wl,-z,max-page-size=4096 -Wl,--version-script="$here/tiny.map" \
	-o "$dir/elf_lookup/tiny.so" "$here/tiny.c"

# maps: every line of a real process's maps, and the payload's memfd.
n=0
while IFS= read -r line; do
	n=$((n + 1))
	printf '%s\n' "$line" >"$dir/maps_line/$n"
done </proc/self/maps
printf '7f0000000000-7f0000001000 r-xp 00000000 00:01 42    %s\n' \
	'/memfd:covinject-payload (deleted)' >"$dir/maps_line/memfd"

# status and stat: this shell's, pid 1's, and a name holding ") (".
cp /proc/self/status "$dir/proc_status/self"
cp /proc/1/status "$dir/proc_status/init" 2>/dev/null || true
cp /proc/self/stat "$dir/stat_ppid/self"
cp /proc/1/stat "$dir/stat_ppid/init" 2>/dev/null || true
printf '42 (a) S 1 (b) R 7 42 42 0 -1 4194560 0 0 0 0\n' >"$dir/stat_ppid/paren"

# configuration texts.
printf 'out=/tmp/cov\ndump_signal=10\nstop_signal=12\nargv=python3 app.py\n' \
	>"$dir/config_parse/plain"
printf 'out=/tmp\nsource=/srv/app\nsource=/opt/lib\ndump_signal=37\nstop_signal=38\nchain=1\ninterval=0.5\nargv=\n' \
	>"$dir/config_parse/full"
