/* UTF-8 as RFC 3629 defines it: what the codec accepts in place and what
 * the JSON log writes as it is. */
#ifndef COMMON_UTF8_H
#define COMMON_UTF8_H

#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at p (at most n bytes, n > 0):
 * no overlong forms, no surrogates, nothing past U+10FFFF; 0 if it is not
 * one. */
size_t utf8_seq(const unsigned char *p, size_t n);

#endif
