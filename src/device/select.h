/*
 * Device spec strings: parsing ("amd:1", "0:2", "gpu", "Radeon") and matching a parsed spec
 * against a list of discovered devices. Pure logic on kiln_device_info, with no OpenCL call,
 * so every form and every bad spec is testable on any machine.
 */
#ifndef KILN_DEVICE_SELECT_H
#define KILN_DEVICE_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include "kiln/device.h"

typedef enum kiln__spec_kind {
    KILN__SPEC_AUTO,
    KILN__SPEC_CPU,
    KILN__SPEC_GPU,
    KILN__SPEC_AMD,
    KILN__SPEC_INTEL,
    KILN__SPEC_NVIDIA,
    KILN__SPEC_POCL,
    KILN__SPEC_INDEX,          /* "N": position in the `kiln devices` table */
    KILN__SPEC_PLATFORM_DEVICE, /* "P:D" */
    KILN__SPEC_NAME,           /* a case-insensitive substring of the device name */
} kiln__spec_kind;

enum { KILN__SPEC_TEXT = 256 };

typedef struct kiln__spec {
    kiln__spec_kind kind;
    size_t ordinal;  /* VENDOR:N's N (0 when absent); INDEX's N; PLATFORM_DEVICE's D */
    size_t platform; /* PLATFORM_DEVICE's P */
    char text[KILN__SPEC_TEXT]; /* the trimmed spec as written (NAME matches on it) */
} kiln__spec;

typedef enum kiln__vendor {
    KILN__VENDOR_OTHER,
    KILN__VENDOR_AMD,
    KILN__VENDOR_INTEL,
    KILN__VENDOR_NVIDIA,
} kiln__vendor;

/* The device's vendor, from its PCI vendor ID or, failing that, its vendor string. The vendor
 * keywords of specs and the KILN_VENDOR_* kernel macros both use this one answer. */
kiln__vendor kiln__device_vendor(const kiln_device_info *d);

/* Parses `spec` (NULL means "auto"). Returns KILN_ERR_BAD_SPEC with a message that quotes the
 * spec and lists the accepted forms. */
kiln_status kiln__spec_parse(kiln_context *ctx, const char *spec, kiln__spec *out);

/* Finds the device the spec names among `infos`. Returns KILN_ERR_NO_DEVICE with a message
 * listing every device when none matches. */
kiln_status kiln__spec_match(kiln_context *ctx, const kiln__spec *spec,
                             const kiln_device_info *infos, size_t n_infos, size_t *out_index);

#endif
