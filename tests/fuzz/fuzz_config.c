/* The command line: the input split at NUL bytes into arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

#define ARGS_MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_string(data, size), *argv[ARGS_MAX + 2] = {"consumer"};
    int argc = 1;
    argv[argc++] = s;
    for (char *p = s; argc < ARGS_MAX && p < s + size; p++)
        if (!*p)
            argv[argc++] = p + 1;
    argv[argc] = NULL;
    /* --help and --version print: send them nowhere. */
    FILE *out = stdout;
    stdout = fopen("/dev/null", "w");
    struct config c;
    char err[512];
    if (config_load(&c, argc, argv, err, sizeof(err)) == CONFIG_OK)
        config_free(&c);
    fclose(stdout);
    stdout = out;
    free(s);
    return 0;
}
