/*
 * Human-readable byte counts for messages and tables ("78.5 GiB"), so that an out-of-memory
 * report can be read at a glance. Binary units, since device limits are powers of two. And the
 * host's byte order, which the little-endian file formats (safetensors, prepared data) check.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/bytes.h"
#include "kiln/context.h"

bool kiln__host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

const char *kiln_format_bytes(unsigned long long n_bytes, char *out, size_t capacity)
{
    static const char *const UNITS[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (out == NULL || capacity == 0)
        return out;
    if (n_bytes < 1024) {
        snprintf(out, capacity, "%llu B", n_bytes);
        return out;
    }
    double value = (double)n_bytes;
    size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < sizeof UNITS / sizeof UNITS[0]) {
        value /= 1024.0;
        unit++;
    }
    snprintf(out, capacity, "%.*f %s", value < 10.0 ? 2 : 1, value, UNITS[unit]);
    return out;
}
