/* modules.h - --source packages and the import context (payload/modules.c).
 * Call with the GIL held; cov_modules_import_lines releases it between
 * modules unless told not to. */
#ifndef COVINJECT_MODULES_H
#define COVINJECT_MODULES_H

#include <stddef.h>
#include "pyapi.h"

/* Append the realpaths of each package's directories (or a module's file)
 * to out[*n..max); 0, or -1 with a message in err naming the first name
 * that cannot be found. */
int cov_modules_resolve(struct pyapi *py, const char *const *names, char **out,
			int max, int *n, char *err, size_t len);

/* Record the import context of every module in sys.modules that is in
 * scope; stops early once *stop is set.  keep_gil: in one hold (uWSGI
 * without threads, where a release lasts until the next request). */
void cov_modules_import_lines(struct pyapi *py, int *stop, int keep_gil);

#endif
