/* fuzz: the one entry point every fuzz target defines. Built with clang's
 * -fsanitize=fuzzer, libFuzzer calls it with generated inputs; built without
 * (any compiler), replay.c calls it once per corpus file. An input that
 * crashes, leaks, trips a sanitizer or fails a FUZZ_CHECK is a bug. */
#ifndef GENQ_FUZZ_H
#define GENQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the code under test promises; abort (a finding) when it does
 * not hold. Unlike assert() it stays on whatever NDEBUG says. */
#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#endif
