/*
 * Parsing device spec strings and choosing the device they name.
 *
 * Vendor keywords match GPUs before other devices of the vendor, because a user who writes
 * "amd" means the Radeon, not the Ryzen that PoCL also reports as AMD. Colons alone do not make
 * a spec numeric: AMD device names such as "gfx90a:sramecc+:xnack-" contain them.
 */
#include "device/select.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"

static const char *const FORMS =
    "accepted forms: auto, cpu, gpu, amd, intel, nvidia, pocl, KEYWORD:N (the N-th such device, "
    "from 0), P:D (platform and device index), N (index in `kiln devices`), or a substring of "
    "the device name";

static const struct {
    const char *word;
    kiln__spec_kind kind;
} KEYWORDS[] = {
    {"auto", KILN__SPEC_AUTO},   {"cpu", KILN__SPEC_CPU},       {"gpu", KILN__SPEC_GPU},
    {"amd", KILN__SPEC_AMD},     {"intel", KILN__SPEC_INTEL},   {"nvidia", KILN__SPEC_NVIDIA},
    {"pocl", KILN__SPEC_POCL},
};

static bool equal_nocase(const char *a, size_t n_a, const char *b)
{
    size_t n_b = strlen(b);
    if (n_a != n_b)
        return false;
    for (size_t i = 0; i < n_a; i++) {
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return false;
    }
    return true;
}

static bool contains_nocase(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0)
        return true;
    for (const char *h = haystack; *h != '\0'; h++) {
        size_t i = 0;
        while (i < n && h[i] != '\0' &&
               tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

static int keyword_of(const char *text, size_t n, kiln__spec_kind *out)
{
    for (size_t i = 0; i < sizeof KEYWORDS / sizeof KEYWORDS[0]; i++) {
        if (equal_nocase(text, n, KEYWORDS[i].word)) {
            *out = KEYWORDS[i].kind;
            return 1;
        }
    }
    return 0;
}

/* Parses a non-empty run of decimal digits that fills [text, text + n). */
static bool parse_index(const char *text, size_t n, size_t *out)
{
    if (n == 0 || n > 9)
        return false;
    size_t value = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)text[i]))
            return false;
        value = value * 10 + (size_t)(text[i] - '0');
    }
    *out = value;
    return true;
}

kiln_status kiln__spec_parse(kiln_context *ctx, const char *spec, kiln__spec *out)
{
    kiln_status rc = KILN_OK;
    memset(out, 0, sizeof *out);
    if (spec == NULL)
        spec = "auto";
    while (isspace((unsigned char)*spec))
        spec++;
    size_t n = strlen(spec);
    while (n > 0 && isspace((unsigned char)spec[n - 1]))
        n--;
    if (n == 0)
        KILN_FAIL(ctx, KILN_ERR_BAD_SPEC, "the device spec is empty; %s", FORMS);
    if (n >= sizeof out->text)
        KILN_FAIL(ctx, KILN_ERR_BAD_SPEC, "the device spec is %zu characters long (at most %zu)",
                  n, sizeof out->text - 1);
    memcpy(out->text, spec, n);
    out->text[n] = '\0';
    const char *text = out->text;

    if (keyword_of(text, n, &out->kind))
        return KILN_OK;
    if (parse_index(text, n, &out->ordinal)) {
        out->kind = KILN__SPEC_INDEX;
        return KILN_OK;
    }
    const char *colon = strchr(text, ':');
    if (colon != NULL) {
        size_t n_left = (size_t)(colon - text);
        const char *right = colon + 1;
        size_t n_right = n - n_left - 1;
        kiln__spec_kind kind;
        bool left_keyword = keyword_of(text, n_left, &kind) != 0;
        size_t platform = 0;
        bool left_number = parse_index(text, n_left, &platform);
        if (left_keyword || left_number) {
            size_t ordinal = 0;
            if (!parse_index(right, n_right, &ordinal))
                KILN_FAIL(ctx, KILN_ERR_BAD_SPEC,
                          "device spec '%s': after ':' expected a device number (0, 1, ...), "
                          "got '%s'; %s",
                          text, right, FORMS);
            if (left_keyword && kind == KILN__SPEC_AUTO)
                KILN_FAIL(ctx, KILN_ERR_BAD_SPEC,
                          "device spec '%s': 'auto' takes no device number; write 'auto', or "
                          "'gpu:N' / 'cpu:N' to pick among several",
                          text);
            out->kind = left_keyword ? kind : KILN__SPEC_PLATFORM_DEVICE;
            out->platform = platform;
            out->ordinal = ordinal;
            return KILN_OK;
        }
        if (n_left == 0)
            KILN_FAIL(ctx, KILN_ERR_BAD_SPEC, "device spec '%s': nothing before ':'; %s", text,
                      FORMS);
    }
    out->kind = KILN__SPEC_NAME;
    return KILN_OK;
cleanup:
    return rc;
}

kiln__vendor kiln__device_vendor(const kiln_device_info *d)
{
    /* The PCI vendor ID is authoritative when it is one we know; the string is the fallback
     * for drivers that report another ID (PoCL on some hosts reports 0 or its own). */
    switch (d->vendor_id) {
    case 0x1002:
    case 0x1022:
        return KILN__VENDOR_AMD;
    case 0x8086:
        return KILN__VENDOR_INTEL;
    case 0x10de:
        return KILN__VENDOR_NVIDIA;
    default:
        break;
    }
    if (contains_nocase(d->vendor, "amd") || contains_nocase(d->vendor, "advanced micro devices"))
        return KILN__VENDOR_AMD;
    if (contains_nocase(d->vendor, "intel"))
        return KILN__VENDOR_INTEL;
    if (contains_nocase(d->vendor, "nvidia"))
        return KILN__VENDOR_NVIDIA;
    return KILN__VENDOR_OTHER;
}

static bool is_vendor(const kiln_device_info *d, kiln__spec_kind kind)
{
    kiln__vendor v = kiln__device_vendor(d);
    return (kind == KILN__SPEC_AMD && v == KILN__VENDOR_AMD) ||
           (kind == KILN__SPEC_INTEL && v == KILN__VENDOR_INTEL) ||
           (kind == KILN__SPEC_NVIDIA && v == KILN__VENDOR_NVIDIA);
}

static bool is_pocl(const kiln_device_info *d)
{
    return contains_nocase(d->platform_name, "portable computing language") ||
           contains_nocase(d->platform_vendor, "pocl");
}

/* Whether device d is a candidate for the spec, in the given pass. Vendor keywords make two
 * passes (GPUs, then the rest) so GPUs come first in the ordinal count. */
static bool candidate(const kiln__spec *spec, const kiln_device_info *d, int pass)
{
    switch (spec->kind) {
    case KILN__SPEC_CPU:
        return pass == 0 && d->type == KILN_DEVICE_TYPE_CPU;
    case KILN__SPEC_GPU:
        return pass == 0 && d->type == KILN_DEVICE_TYPE_GPU;
    case KILN__SPEC_AMD:
    case KILN__SPEC_INTEL:
    case KILN__SPEC_NVIDIA:
        return pass < 2 && is_vendor(d, spec->kind) &&
               (pass == 0) == (d->type == KILN_DEVICE_TYPE_GPU);
    case KILN__SPEC_POCL:
        return pass == 0 && is_pocl(d);
    case KILN__SPEC_NAME:
        return pass == 0 && contains_nocase(d->name, spec->text);
    case KILN__SPEC_AUTO: /* GPUs, then CPUs, then anything */
        return (pass == 0 && d->type == KILN_DEVICE_TYPE_GPU) ||
               (pass == 1 && d->type == KILN_DEVICE_TYPE_CPU) || pass == 2;
    case KILN__SPEC_INDEX:
    case KILN__SPEC_PLATFORM_DEVICE:
        return false;
    }
    return false;
}

static kiln_status no_match(kiln_context *ctx, const kiln__spec *spec,
                            const kiln_device_info *infos, size_t n_infos)
{
    kiln_status rc = kiln__error(ctx, KILN_ERR_NO_DEVICE,
                                 "kiln__spec_match",
                                 "device spec '%s' matches none of the %zu OpenCL device(s) here:",
                                 spec->text, n_infos);
    for (size_t i = 0; i < n_infos; i++) {
        const kiln_device_info *d = &infos[i];
        kiln__error_append(ctx, "\n  %zu  (%zu:%zu)  %s  [%s, %s]  on %s", d->index,
                           d->platform_index, d->device_index, d->name,
                           kiln_device_type_name(d->type), d->vendor, d->platform_name);
    }
    kiln__error_append(ctx, "\nPick one of these by index, P:D or name, or use a keyword (%s).",
                       FORMS);
    return rc;
}

kiln_status kiln__spec_match(kiln_context *ctx, const kiln__spec *spec,
                             const kiln_device_info *infos, size_t n_infos, size_t *out_index)
{
    if (spec->kind == KILN__SPEC_INDEX) {
        if (spec->ordinal < n_infos) {
            *out_index = spec->ordinal;
            return KILN_OK;
        }
        return no_match(ctx, spec, infos, n_infos);
    }
    if (spec->kind == KILN__SPEC_PLATFORM_DEVICE) {
        for (size_t i = 0; i < n_infos; i++) {
            if (infos[i].platform_index == spec->platform &&
                infos[i].device_index == spec->ordinal) {
                *out_index = i;
                return KILN_OK;
            }
        }
        return no_match(ctx, spec, infos, n_infos);
    }
    size_t seen = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < n_infos; i++) {
            if (!candidate(spec, &infos[i], pass))
                continue;
            /* auto takes the first candidate of the earliest pass that has one. */
            if (seen == spec->ordinal) {
                *out_index = i;
                return KILN_OK;
            }
            seen++;
        }
    }
    return no_match(ctx, spec, infos, n_infos);
}
