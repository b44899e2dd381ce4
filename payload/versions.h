/*
 * versions.h - the CPython versions covinject supports: the one table that
 * the CLI's refusal (cli/start.c, check_python), the payload's own check
 * (payload/payload.c, setup), `covinject --help`, the README's table and
 * the test matrix (test/lib.py reads the X(...) rows below) all follow.
 * test/core.py checks that the README and --help agree with it.
 *
 * A row is a minor version covinject is tested on, default (GIL) builds
 * only: free-threaded builds (Py_GIL_DISABLED, "3.14t") have another
 * object layout and no GIL for the collector to rely on, and are refused.
 * Version differences inside the range are found at run time, not here.
 */
#ifndef COVINJECT_VERSIONS_H
#define COVINJECT_VERSIONS_H

#include <stdio.h>

#define COV_PYTHONS(X) \
	X(2, 7)		\
	X(3, 6)		\
	X(3, 7)		\
	X(3, 8)		\
	X(3, 9)		\
	X(3, 10)	\
	X(3, 11)	\
	X(3, 12)	\
	X(3, 13)	\
	X(3, 14)	\
	X(3, 15)

enum cov_python_fit { COV_PY_SUPPORTED, COV_PY_OLDER, COV_PY_NEWER };

#define COV_PY_ROW(major, minor) { major, minor },

/* Row i of the table into *major, *minor; 0 past its end. */
static inline int cov_python_row(int i, int *major, int *minor)
{
	static const int rows[][2] = { COV_PYTHONS(COV_PY_ROW) };

	if (i < 0 || i >= (int)(sizeof(rows) / sizeof(rows[0])))
		return 0;
	*major = rows[i][0];
	*minor = rows[i][1];
	return 1;
}

/* Where major.minor stands: in the table, before it, or after its last row. */
static inline enum cov_python_fit cov_python_fit(int major, int minor)
{
	int i, a, b, newest = 0;

	for (i = 0; cov_python_row(i, &a, &b); i++) {
		if (a == major && b == minor)
			return COV_PY_SUPPORTED;
		newest = a * 100 + b;
	}
	return major * 100 + minor > newest ? COV_PY_NEWER : COV_PY_OLDER;
}

/* "2.7, 3.6-3.15": the rows, each run of one major version and
 * consecutive minor ones as first-last. */
static inline const char *cov_python_range(char *buf, size_t len)
{
	int i = 0, j, a, b, c, d;
	size_t at = 0;

	buf[0] = 0;
	while (cov_python_row(i, &a, &b)) {
		for (j = i; cov_python_row(j + 1, &c, &d) && c == a && d == b + (j + 1 - i);)
			j++;
		cov_python_row(j, &c, &d);
		if (at < len)
			at += (size_t)snprintf(buf + at, len - at,
					       j > i ? "%s%d.%d-%d.%d" : "%s%d.%d",
					       at ? ", " : "", a, b, c, d);
		i = j + 1;
	}
	return buf;
}

/* "3.15": the newest row. */
static inline const char *cov_python_newest(char *buf, size_t len)
{
	int i, a = 0, b = 0;

	for (i = 0; cov_python_row(i, &a, &b); i++)
		;	/* a row past the end leaves the last one in a, b */
	snprintf(buf, len, "%d.%d", a, b);
	return buf;
}

#endif
