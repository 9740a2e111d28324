/* Minting a token for the gateway's --auth jwt with an HS256 secret: the
 * demo's way to connect as a user (producer --token-for USER). Real
 * deployments mint tokens in their own identity service. */
#ifndef PRODUCER_TOKEN_H
#define PRODUCER_TOKEN_H

#include <stddef.h>
#include <stdint.h>

/* Writes a JWT {"sub":user,"iat":now_s,"exp":now_s+ttl_s} signed with
 * secret (HS256) into out (NUL-terminated); -1 if out is too small. */
int token_mint(const char *user, int64_t now_s, long ttl_s, const unsigned char *secret,
               size_t secret_len, char *out, size_t size);

#endif
