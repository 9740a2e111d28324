/* WebSocket frame headers (RFC 6455 5.2) for server-to-client text frames.
 *
 * The gateway writes several notifications to a connection in one write:
 * each stays its own frame, as clients expect, but they share one system
 * call instead of one each. */
#ifndef CONSUMER_WSFRAME_H
#define CONSUMER_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

#define WSFRAME_HEADER_MAX 10

/* Writes the header of a final, unmasked text frame carrying len bytes;
 * returns its size (2, 4 or 10). */
size_t wsframe_text_header(unsigned char out[WSFRAME_HEADER_MAX], uint64_t len);

#endif
