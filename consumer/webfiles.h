/* The files served from --web-root stay inside it: libwebsockets refuses
 * ".." in a URL but follows symbolic links, so a link in the folder could
 * serve any file the gateway can read. webfiles_confine wraps the
 * context's file open so that only files whose real path is inside the
 * root's are opened. */
#ifndef CONSUMER_WEBFILES_H
#define CONSUMER_WEBFILES_H

#include <libwebsockets.h>

/* 0, or -1 if root has no real path (it does not exist): then no file is
 * served. One context per process: libwebsockets' file open has no user
 * pointer. */
int webfiles_confine(struct lws_context *ctx, const char *root);

#endif
