/* writer.h - coverage.py data files from snapshots (payload/writer.c). */
#ifndef COVINJECT_WRITER_H
#define COVINJECT_WRITER_H

#include <stddef.h>
#include "store.h"

#define COVINJECT_DATA_VERSION "covinject 0.1.0"

/*
 * Write s to dir/tmpname, then rename it to final (a full path).  0, or -1
 * with a message in err; on failure no temporary file remains and final is
 * untouched.
 */
int cov_write_snapshot(const struct cov_snap *s, const char *dir,
		       const char *final, const char *tmpname, const char *argv,
		       char *err, size_t errlen);

#endif
