/*
 * Byte-level facts about the host that file formats need.
 */
#ifndef KILN_CORE_BYTES_H
#define KILN_CORE_BYTES_H

#include <stdbool.h>

/* Whether the host stores the least significant byte first (the file formats' order). */
bool kiln__host_is_little_endian(void);

#endif
