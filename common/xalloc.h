/* Allocation that never returns NULL: on failure it logs and aborts.
 *
 * Why abort rather than recover: every notification's Kafka offset is
 * committed only once it was delivered and acknowledged or durably stored,
 * so a crash loses nothing (it is consumed again on restart), while a
 * recovery branch that is wrong can (a half-built store entry, an offset
 * committed past one that failed to be tracked). One rule, as in Redis's
 * zmalloc: out of memory is fatal. */
#ifndef COMMON_XALLOC_H
#define COMMON_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
/* The n bytes at s, NUL-terminated. */
char *xstrndup(const char *s, size_t n);

#endif
