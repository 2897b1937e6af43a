/*
 * The one place Kiln includes the OpenCL headers, pinned to the OpenCL 1.2 API so the library
 * runs on every driver we target. Also names OpenCL error codes for messages.
 */
#ifndef KILN_DEVICE_CL_H
#define KILN_DEVICE_CL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

/* "CL_OUT_OF_RESOURCES" for -5, "CL_UNKNOWN_ERROR" for codes not in the list. */
const char *kiln__cl_error_name(cl_int code);

#endif
