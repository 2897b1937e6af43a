/*
 * Status codes returned by every fallible Kiln function.
 *
 * One X-macro list generates the enum, kiln_status_name and kiln_status_str, so a new code
 * cannot be added without a name and a message. Success is 0 and every error is negative.
 * The detailed, situation-specific message lives in the context (kiln_context_last_error);
 * the strings here only describe the class of failure.
 */
#ifndef KILN_STATUS_H
#define KILN_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define KILN_STATUS_LIST(X)                                                                        \
    X(OK, 0, "success")                                                                            \
    X(ERR_INVALID_ARGUMENT, -1, "invalid argument")                                                \
    X(ERR_NO_MEMORY, -2, "host memory allocation failed")                                          \
    X(ERR_NO_PLATFORM, -3, "no OpenCL platform is installed")                                      \
    X(ERR_NO_DEVICE, -4, "no OpenCL device matches the device spec")                               \
    X(ERR_BAD_SPEC, -5, "malformed device spec")                                                   \
    X(ERR_OPENCL, -6, "an OpenCL call failed")                                                     \
    X(ERR_BUILD, -7, "an OpenCL program failed to compile")                                        \
    X(ERR_DEVICE_OOM, -8, "device memory allocation failed")                                       \
    X(ERR_IO, -9, "file input/output failed")                                                      \
    X(ERR_NOT_FOUND, -10, "no such object")                                                        \
    X(ERR_CORRUPT, -11, "corrupt or truncated data")                                               \
    X(ERR_SHAPE, -12, "tensor shapes do not fit the operation")                                    \
    X(ERR_UNSUPPORTED, -13, "not supported on this device or build")                               \
    X(ERR_INTERNAL, -14, "internal error (a bug in Kiln)")

typedef enum kiln_status {
#define KILN__STATUS_ENUM(name, value, message) KILN_##name = value,
    KILN_STATUS_LIST(KILN__STATUS_ENUM)
#undef KILN__STATUS_ENUM
} kiln_status;

/* "KILN_ERR_BUILD" for KILN_ERR_BUILD; "KILN_UNKNOWN_STATUS" for a value not in the list.
 * Returns a static string; thread-safe. */
const char *kiln_status_name(kiln_status status);

/* A short lower-case description of the class of failure; static; thread-safe. */
const char *kiln_status_str(kiln_status status);

#ifdef __cplusplus
}
#endif

#endif
