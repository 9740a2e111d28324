/* Error detail for people, written into the caller's errstr buffer.
 *
 * The house convention: a function that can fail returns 0 or -1 and says
 * why in an errstr buffer of errstr_size bytes the caller passes in. */
#ifndef COMMON_ERRSTR_H
#define COMMON_ERRSTR_H

#include <stddef.h>

/* Writes the formatted sentence into errstr (cut to fit and NUL-terminated
 * when size > 0; nothing is written when size is 0) and returns -1, so a
 * failing function can end with `return errstr_set(errstr, size, ...);`. */
int errstr_set(char *errstr, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
