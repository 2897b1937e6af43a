/*
 * The memory planner: assigns values with known lifetimes (inclusive step intervals of the
 * executor's schedule) to device buffer slots so that no two values whose intervals overlap
 * share a slot. Pure host logic, testable without a device.
 */
#ifndef KILN_GRAPH_PLANNER_H
#define KILN_GRAPH_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"

typedef struct kiln__plan_item {
    size_t bytes;
    int32_t start, end; /* first and last step the value must hold its contents (inclusive) */
    int32_t slot;       /* filled in by the planner */
} kiln__plan_item;

/* Assigns every item a slot. With `share`, a slot is reused by an item that starts after the
 * slot's previous item ended (best fit by size, growing a slot when none fits); without it,
 * every item gets its own slot. On success *out_slot_bytes (caller frees with kiln__free)
 * holds each slot's size. */
kiln_status kiln__plan_assign(kiln_context *ctx, kiln__plan_item *items, size_t n_items,
                              bool share, size_t **out_slot_bytes, size_t *out_n_slots);

/* Checks an assignment: every pair of items in one slot has disjoint intervals, and each
 * slot is large enough. Returns false on the first violation. For tests and debug builds. */
bool kiln__plan_is_valid(const kiln__plan_item *items, size_t n_items, const size_t *slot_bytes,
                         size_t n_slots);

#endif
