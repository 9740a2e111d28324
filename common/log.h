/* Timestamped, levelled log lines on stderr, shared by both programs. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the highest level printed; returns -1 for an unknown name. */
int log_set_level(const char *name);
/* "text" (the default: time, level, message) or "json" (one object a line:
 * time, level, msg); returns -1 for an unknown name. */
int log_set_format(const char *name);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
