/* Confining static files to the web root. */
#include "webfiles.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* File-global: the open callback gets no pointer of ours. */
static char root_real[PATH_MAX];
static size_t root_len;
static lws_fop_fd_t (*platform_open)(const struct lws_plat_file_ops *fops, const char *filename,
                                     const char *vpath, lws_fop_flags_t *flags);

static lws_fop_fd_t confined_open(const struct lws_plat_file_ops *fops, const char *filename,
                                  const char *vpath, lws_fop_flags_t *flags)
{
    char real[PATH_MAX];
    if (!root_len || !realpath(filename, real) || strncmp(real, root_real, root_len) != 0 ||
        (real[root_len] != '/' && real[root_len] != '\0')) {
        log_debug("not serving %s: outside the web root", filename);
        return NULL;
    }
    return platform_open(fops, filename, vpath, flags);
}

int webfiles_confine(struct lws_context *ctx, const char *root)
{
    /* Without a root, nothing is served (not even once it appears). */
    root_len = realpath(root, root_real) ? strlen(root_real) : 0;
    struct lws_plat_file_ops *fops = lws_get_fops(ctx);
    platform_open = fops->LWS_FOP_OPEN;
    fops->LWS_FOP_OPEN = confined_open;
    return root_len ? 0 : -1;
}
