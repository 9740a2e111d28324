/* Clocks and ISO-8601 timestamps. */
#ifndef COMMON_TIMEUTIL_H
#define COMMON_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define ISO8601_LEN 32 /* room for "2023-10-01T12:00:00.000Z" and a NUL */

#include <time.h>

int64_t now_wall_ms(void);
/* The wall-clock time ms from now, as the pthread timed waits take it. */
struct timespec wall_in_ms(int64_t ms);
int64_t now_mono_ms(void);

/* Formats epoch milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ"; -1 if out of range. */
int iso8601_from_ms(int64_t ms, char out[ISO8601_LEN]);

/* Parses an ISO-8601 UTC or offset timestamp ("2023-10-01T12:00:00Z",
 * "...12:00:00.123+02:00") into epoch milliseconds; -1 if it is not one. */
int iso8601_parse(const char *s, size_t len, int64_t *ms);

#endif
