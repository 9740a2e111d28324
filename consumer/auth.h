/* Who a connection is: with --auth jwt, the user a signed token names
 * (jwt.h verifies it); with --auth none, the userId in the URL. Plain
 * decisions, no sockets: ws_session.c asks, and closes with the code
 * given. The close codes are docs/protocol.md's. */
#ifndef CONSUMER_AUTH_H
#define CONSUMER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "jwt.h"
#include "notification.h"

#define AUTH_CLOSE_POLICY 1008  /* missing or bad token, or not the token's user */
#define AUTH_CLOSE_EXPIRED 4001 /* reconnect with a fresh token */
#define AUTH_CLOSE_FORBIDDEN 4003 /* valid, but revoked: do not retry */
#define AUTH_REASON_MAX 123     /* bytes of a WebSocket close reason */

typedef struct auth auth_t;

/* From the settings (keys read from their files); NULL with errstr. */
auth_t *auth_new(const struct config *c, char *errstr, size_t size);
void auth_free(auth_t *a);
/* Reads the keys and the deny-list again (SIGHUP); on an error the old ones
 * stay and errstr says why. */
int auth_reload(auth_t *a, const struct config *c, char *errstr, size_t size);
/* Whether the deny-list names user ("sub:USER") or jti. */
int auth_revoked(const auth_t *a, const char *user, const char *jti);
/* Whether connections must bring a token. */
int auth_required(const auth_t *a);
int auth_timeout_ms(const auth_t *a);
/* For the start-up log: "none" or "jwt (RS256, ES256)". */
const char *auth_describe(const auth_t *a, char *buf, size_t size);

struct auth_grant {
    int close_code; /* 0: granted; else close with it and reason */
    char reason[AUTH_REASON_MAX + 1];
    char user[NOTIF_USER_MAX + 1];
    char jti[JWT_JTI_MAX + 1];
    int64_t until_ms; /* wall-clock ms when the token ends (its exp plus the leeway) */
    int send;         /* the token's "send": true */
    int has_rooms;    /* the token's "rooms", comma-separated (none: no room) */
    char rooms[JWT_ROOMS_MAX * (NOTIF_ROOM_MAX + 1)];
};

/* Checks token (len bytes) at now_ms (wall clock). claimed_user, when not
 * NULL or empty, is the userId the client asked for: it must be the
 * token's. */
void auth_check(const auth_t *a, const char *token, size_t len, const char *claimed_user,
                int64_t now_ms, struct auth_grant *g);

#endif
