/* Time-ordered unique ids (RFC 9562 UUIDv7) for notifications. */
#ifndef COMMON_UUID7_H
#define COMMON_UUID7_H

#define UUID7_LEN 37 /* 36 characters and a NUL */

/* Writes a new UUIDv7. Ids made by one process are strictly increasing,
 * even within one millisecond; the random bits keep processes apart. */
void uuid7_generate(char out[UUID7_LEN]);

#endif
