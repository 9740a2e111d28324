/* WebSocket frame headers for the frames the gateway writes raw. */
#include "wsframe.h"

size_t wsframe_text_header(unsigned char out[WSFRAME_HEADER_MAX], uint64_t len)
{
    out[0] = 0x81; /* FIN, opcode 1: text */
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}
