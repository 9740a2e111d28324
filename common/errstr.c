/* The printf-into-errstr helper. */
#include "errstr.h"

#include <stdarg.h>
#include <stdio.h>

int errstr_set(char *errstr, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, size, fmt, ap);
    va_end(ap);
    return -1;
}
