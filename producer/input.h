/* Reads standard input one line at a time without blocking the producer:
 * while no full line has arrived the caller gets INPUT_AGAIN and can serve
 * delivery reports and notice signals. */
#ifndef PRODUCER_INPUT_H
#define PRODUCER_INPUT_H

#include <stddef.h>

typedef struct input input_t;

enum input_result {
    INPUT_LINE,     /* *line, *len: one line without its "\n" or "\r\n" */
    INPUT_AGAIN,    /* nothing complete within the wait, or a signal arrived */
    INPUT_EOF,      /* end of input */
    INPUT_TOO_LONG, /* a line longer than the limit was read and dropped */
    INPUT_ERROR,    /* read failed; errno says why */
};

/* A reader of fd whose lines may be up to max_line bytes. */
input_t *input_new(int fd, size_t max_line);

/* Waits up to wait_ms for the next line. The line stays valid until the
 * next call and is NUL-terminated. */
enum input_result input_next(input_t *in, char **line, size_t *len, int wait_ms);

/* The number of the line last returned, counting from 1. */
long input_lineno(const input_t *in);

void input_free(input_t *in);

#endif
