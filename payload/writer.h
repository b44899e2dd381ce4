/* writer.h - coverage.py data files from snapshots (payload/writer.c). */
#ifndef COVINJECT_WRITER_H
#define COVINJECT_WRITER_H

#include <stddef.h>
#include "store.h"

#define COVINJECT_DATA_VERSION "covinject 0.1.0"

/* Where snapshots go. */
struct cov_out {
	int dirfd;		/* the directory, open */
	const char *path;	/* a path to it the process sees, or NULL */
	const char *shown;	/* its name as the CLI that asked for it sees it */
};

/*
 * Write s to tmpname in the directory, then rename it to final (both names
 * in that directory).  0, or -1 with a message in err; on failure no
 * temporary file remains and final is untouched.
 */
int cov_write_snapshot(const struct cov_snap *s, const struct cov_out *out,
		       const char *final, const char *tmpname, const char *argv,
		       char *err, size_t errlen);

#endif
