/*
 * Names and messages for kiln_status, generated from the one X-macro list in status.h.
 * The per-call detail of a failure is recorded by core/context.c, not here.
 */
#include "kiln/status.h"

const char *kiln_status_name(kiln_status status)
{
    switch (status) {
#define KILN__STATUS_NAME(name, value, message)                                                    \
    case KILN_##name:                                                                              \
        return "KILN_" #name;
        KILN_STATUS_LIST(KILN__STATUS_NAME)
#undef KILN__STATUS_NAME
    }
    return "KILN_UNKNOWN_STATUS";
}

const char *kiln_status_str(kiln_status status)
{
    switch (status) {
#define KILN__STATUS_STR(name, value, message)                                                     \
    case KILN_##name:                                                                              \
        return message;
        KILN_STATUS_LIST(KILN__STATUS_STR)
#undef KILN__STATUS_STR
    }
    return "unknown status";
}
