/*
 * Helpers that callbacks.c and path_template.c share: looking a name up in an epoch record,
 * and listing names for error messages. Internal to the train layer.
 */
#ifndef KILN_TRAIN_CALLBACKS_INTERNAL_H
#define KILN_TRAIN_CALLBACKS_INTERNAL_H

#include <stddef.h>

#include "kiln/callbacks.h"

/* The record's value whose name is the name_len characters at `name`, or NULL. */
const kiln_metric_value *kiln__record_lookup(const kiln_epoch_record *record, const char *name,
                                             size_t name_len);

/* Writes "a, b, c" into out[capacity] (ending in ", ..." when they do not fit), each name
 * wrapped in brace_open and brace_close, `first` (when not NULL) before `names`. */
void kiln__list_names(char *out, size_t capacity, const char *first, const char *const *names,
                      size_t n_names, const char *brace_open, const char *brace_close);

#endif
