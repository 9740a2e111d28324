/* Identity of connections: keys from the settings, grants from tokens. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "xalloc.h"

struct auth {
    jwt_keys_t *keys; /* NULL: --auth none */
    struct jwt_rules rules;
    int timeout_ms;
};

auth_t *auth_new(const struct config *c, char *errstr, size_t size)
{
    auth_t *a = xcalloc(1, sizeof(*a));
    a->timeout_ms = c->auth_timeout_s * 1000;
    a->rules = (struct jwt_rules){c->jwt_audience, c->jwt_issuer, c->jwt_leeway_s};
    if (strcmp(c->auth, "jwt") != 0)
        return a;
    /* config_load made sure exactly one is set. */
    if (*c->jwt_secret)
        a->keys = jwt_keys_secret((const unsigned char *)c->jwt_secret, strlen(c->jwt_secret),
                                  errstr, size);
    else if (*c->jwt_secret_file)
        a->keys = jwt_keys_secret_file(c->jwt_secret_file, errstr, size);
    else if (*c->jwt_public_key_file)
        a->keys = jwt_keys_pem_file(c->jwt_public_key_file, errstr, size);
    else
        a->keys = jwt_keys_jwks_file(c->jwks_file, errstr, size);
    if (!a->keys) {
        free(a);
        return NULL;
    }
    return a;
}

void auth_free(auth_t *a)
{
    if (!a)
        return;
    jwt_keys_free(a->keys);
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
    memcpy(g->user, claims.sub, sizeof(g->user));
    g->until_ms = (claims.exp + a->rules.leeway_s) * 1000;
}
