/* Identity of connections: keys from the settings, grants from tokens. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "jwt.h"
#include "xalloc.h"

#define DENY_LINE_MAX 256
#define DENY_MAX 100000

/* One revoked token id ("jti:X") or user ("sub:U"). */
struct deny {
    UT_hash_handle hh;
    char key[];
};

struct auth {
    jwt_keys_t *keys; /* NULL: --auth none */
    struct deny *denied;
    struct jwt_rules rules;
    int timeout_ms;
};

static jwt_keys_t *load_keys(const struct config *c, char *errstr, size_t size)
{
    /* config_load made sure exactly one is set. */
    if (*c->jwt_secret)
        return jwt_keys_secret((const unsigned char *)c->jwt_secret, strlen(c->jwt_secret),
                               errstr, size);
    if (*c->jwt_secret_file)
        return jwt_keys_secret_file(c->jwt_secret_file, errstr, size);
    if (*c->jwt_public_key_file)
        return jwt_keys_pem_file(c->jwt_public_key_file, errstr, size);
    return jwt_keys_jwks_file(c->jwks_file, errstr, size);
}

static void free_denied(struct deny *d)
{
    struct deny *e, *tmp;
    HASH_ITER(hh, d, e, tmp) {
        HASH_DEL(d, e);
        free(e);
    }
}

static void deny(struct deny **set, const char *kind, const char *value)
{
    struct deny *e;
    size_t n = strlen(kind) + strlen(value) + 1;
    e = xmalloc(sizeof(*e) + n);
    snprintf(e->key, n, "%s%s", kind, value);
    struct deny *old;
    HASH_FIND_STR(*set, e->key, old);
    if (old)
        free(e);
    else
        HASH_ADD_STR(*set, key, e);
}

/* The --token-denylist file: a jti or "sub:USER" a line, # comments. */
static int load_denylist(const char *path, struct deny **out, char *errstr, size_t size)
{
    *out = NULL;
    if (!*path)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, size, "--token-denylist %s: cannot open it", path);
        return -1;
    }
    char line[DENY_LINE_MAX + 2];
    int n = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        n++;
        size_t len = strcspn(line, "\r\n");
        if (len > DENY_LINE_MAX || HASH_COUNT(*out) >= DENY_MAX) {
            snprintf(errstr, size, "%s:%d: over %d bytes, or more than %d entries", path, n,
                     DENY_LINE_MAX, DENY_MAX);
            rc = -1;
            break;
        }
        line[len] = '\0';
        char *p = line, *end = line + len;
        while (*p == ' ' || *p == '\t')
            p++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*p || *p == '#')
            continue;
        if (strncmp(p, "sub:", 4) == 0) {
            if (!notification_user_valid(p + 4, strlen(p + 4))) {
                snprintf(errstr, size, "%s:%d: \"sub:\" must be followed by a user id", path, n);
                rc = -1;
            } else {
                deny(out, "sub:", p + 4);
            }
        } else if (strlen(p) > JWT_JTI_MAX) {
            snprintf(errstr, size, "%s:%d: a jti is at most %d bytes", path, n, JWT_JTI_MAX);
            rc = -1;
        } else {
            deny(out, "jti:", p);
        }
    }
    fclose(f);
    if (rc != 0) {
        free_denied(*out);
        *out = NULL;
    }
    return rc;
}

auth_t *auth_new(const struct config *c, char *errstr, size_t size)
{
    auth_t *a = xcalloc(1, sizeof(*a));
    a->timeout_ms = c->auth_timeout_s * 1000;
    a->rules = (struct jwt_rules){c->jwt_audience, c->jwt_issuer, c->jwt_leeway_s};
    if (strcmp(c->auth, "jwt") != 0)
        return a;
    if (auth_reload(a, c, errstr, size) != 0) {
        free(a);
        return NULL;
    }
    return a;
}

int auth_reload(auth_t *a, const struct config *c, char *errstr, size_t size)
{
    if (strcmp(c->auth, "jwt") != 0)
        return 0;
    struct deny *denied;
    jwt_keys_t *keys = load_keys(c, errstr, size);
    if (!keys)
        return -1;
    if (load_denylist(c->token_denylist, &denied, errstr, size) != 0) {
        jwt_keys_free(keys);
        return -1;
    }
    jwt_keys_free(a->keys);
    free_denied(a->denied);
    a->keys = keys;
    a->denied = denied;
    return 0;
}

int auth_revoked(const auth_t *a, const char *user, const char *jti)
{
    char key[8 + JWT_JTI_MAX + NOTIF_USER_MAX];
    struct deny *e = NULL;
    if (!a->denied)
        return 0;
    snprintf(key, sizeof(key), "sub:%s", user);
    HASH_FIND_STR(a->denied, key, e);
    if (!e && jti && *jti) {
        snprintf(key, sizeof(key), "jti:%s", jti);
        HASH_FIND_STR(a->denied, key, e);
    }
    return e != NULL;
}

void auth_free(auth_t *a)
{
    if (!a)
        return;
    jwt_keys_free(a->keys);
    free_denied(a->denied);
    free(a);
}

int auth_required(const auth_t *a)
{
    return a->keys != NULL;
}

int auth_timeout_ms(const auth_t *a)
{
    return a->timeout_ms;
}

const char *auth_describe(const auth_t *a, char *buf, size_t size)
{
    if (a->keys)
        snprintf(buf, size, "jwt (%s)", jwt_keys_algorithms(a->keys));
    else
        snprintf(buf, size, "none");
    return buf;
}

void auth_check(const auth_t *a, const char *token, size_t len, const char *claimed_user,
                int64_t now_ms, struct auth_grant *g)
{
    struct jwt_claims claims;
    memset(g, 0, sizeof(*g));
    enum jwt_result r = jwt_verify(a->keys, &a->rules, token, len, now_ms / 1000, &claims,
                                   g->reason, sizeof(g->reason));
    if (r != JWT_OK) {
        g->close_code = r == JWT_EXPIRED ? AUTH_CLOSE_EXPIRED : AUTH_CLOSE_POLICY;
        return;
    }
    if (claimed_user && *claimed_user && strcmp(claimed_user, claims.sub) != 0) {
        g->close_code = AUTH_CLOSE_POLICY;
        snprintf(g->reason, sizeof(g->reason), "userId is not the token's user (sub)");
        return;
    }
    if (auth_revoked(a, claims.sub, claims.jti)) {
        g->close_code = AUTH_CLOSE_FORBIDDEN;
        snprintf(g->reason, sizeof(g->reason), "the token is revoked");
        return;
    }
    memcpy(g->user, claims.sub, sizeof(g->user));
    memcpy(g->jti, claims.jti, sizeof(g->jti));
    g->until_ms = (claims.exp + a->rules.leeway_s) * 1000;
    g->send = claims.send;
    g->has_rooms = claims.has_rooms;
    memcpy(g->rooms, claims.rooms, sizeof(g->rooms));
}
