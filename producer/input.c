#include "input.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xalloc.h"

#define READ_CHUNK 65536

struct input {
    int fd;
    char *buf;
    size_t cap;    /* one byte is always kept for the NUL after a line */
    size_t start;  /* first byte not yet returned */
    size_t scan;   /* bytes before this were searched for "\n" already */
    size_t end;    /* bytes read */
    size_t max_line;
    int eof;
    int discarding; /* inside a line that is too long: drop up to its "\n" */
    long lineno;
};

input_t *input_new(int fd, size_t max_line)
{
    input_t *in = xcalloc(1, sizeof(*in));
    in->fd = fd;
    in->max_line = max_line;
    /* A whole line, its "\r\n", a NUL, and room to read ahead. */
    in->cap = max_line + 3 + READ_CHUNK;
    in->buf = xmalloc(in->cap);
    return in;
}

void input_free(input_t *in)
{
    if (!in)
        return;
    free(in->buf);
    free(in);
}

long input_lineno(const input_t *in)
{
    return in->lineno;
}

/* Hands out buf[start, stop) as a line and moves past it and `skip` more bytes. */
static enum input_result take_line(input_t *in, size_t stop, size_t skip, char **line,
                                   size_t *len)
{
    size_t n = stop - in->start;
    char *p = in->buf + in->start;

    in->lineno++;
    in->start = in->scan = stop + skip;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    if (n > in->max_line)
        return INPUT_TOO_LONG;
    p[n] = '\0';
    *line = p;
    *len = n;
    return INPUT_LINE;
}

enum input_result input_next(input_t *in, char **line, size_t *len, int wait_ms)
{
    for (;;) {
        char *nl = memchr(in->buf + in->scan, '\n', in->end - in->scan);
        if (nl) {
            size_t at = (size_t)(nl - in->buf);
            if (in->discarding) {
                in->discarding = 0;
                in->lineno++;
                in->start = in->scan = at + 1;
                return INPUT_TOO_LONG;
            }
            return take_line(in, at, 1, line, len);
        }
        in->scan = in->end;

        if (in->eof) {
            if (in->discarding) {
                in->discarding = 0;
                in->lineno++;
                in->start = in->scan = in->end;
                return INPUT_TOO_LONG;
            }
            if (in->end > in->start) /* a last line without "\n" */
                return take_line(in, in->end, 0, line, len);
            return INPUT_EOF;
        }

        /* No "\n" within a line's worth (and its "\r"): drop it as it comes. */
        if (in->end - in->start > in->max_line + 1) {
            in->discarding = 1;
            in->start = in->scan = in->end = 0;
        }
        if (in->start > 0) {
            memmove(in->buf, in->buf + in->start, in->end - in->start);
            in->end -= in->start;
            in->scan -= in->start;
            in->start = 0;
        }

        struct pollfd pfd = {.fd = in->fd, .events = POLLIN};
        int r = poll(&pfd, 1, wait_ms);
        if (r < 0 && errno != EINTR)
            return INPUT_ERROR;
        if (r <= 0)
            return INPUT_AGAIN;
        ssize_t n = read(in->fd, in->buf + in->end, in->cap - 1 - in->end);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                return INPUT_AGAIN;
            return INPUT_ERROR;
        }
        if (n == 0)
            in->eof = 1;
        in->end += (size_t)n;
    }
}
