/* libFuzzer targets: each file defines LLVMFuzzerTestOneInput over one
 * parser. `make fuzz` builds them with clang's libFuzzer; replay.c runs
 * the checked-in corpus and every crash found through the same function
 * under the normal compiler (make test). */
#ifndef TESTS_FUZZ_H
#define TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a NUL-terminated string (fuzz targets own the copy). */
char *fuzz_string(const uint8_t *data, size_t size);

#endif
