/*
 * Liveness-based buffer assignment: items sorted by start step are packed greedily into slots
 * that became free before they start, choosing the smallest free slot that fits (or growing
 * the largest free one), which is the classic linear-scan approach to interval colouring.
 * Never assigns two items with overlapping lifetimes to one slot.
 */
#include <stdlib.h>
#include <string.h>

#include "graph/planner.h"

typedef struct slot_state {
    size_t bytes;
    int32_t busy_until; /* the end step of the last item placed here */
} slot_state;

/* Stable order by start step, ties by index: the plan is deterministic. */
static void sort_by_start(const kiln__plan_item *items, size_t *order, size_t n)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) { /* insertion sort: graphs have at most thousands */
        size_t k = order[i];
        size_t j = i;
        while (j > 0 && items[order[j - 1]].start > items[k].start) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = k;
    }
}

kiln_status kiln__plan_assign(kiln_context *ctx, kiln__plan_item *items, size_t n_items,
                              bool share, size_t **out_slot_bytes, size_t *out_n_slots)
{
    kiln_status rc = KILN_OK;
    size_t *order = kiln__calloc(ctx, n_items ? n_items : 1, sizeof *order);
    slot_state *slots = kiln__calloc(ctx, n_items ? n_items : 1, sizeof *slots);
    size_t n_slots = 0;
    *out_slot_bytes = NULL;
    *out_n_slots = 0;
    if (order == NULL || slots == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory planning %zu buffers", n_items);
    sort_by_start(items, order, n_items);
    for (size_t o = 0; o < n_items; o++) {
        kiln__plan_item *it = &items[order[o]];
        size_t best = SIZE_MAX, largest = SIZE_MAX;
        for (size_t s = 0; share && s < n_slots; s++) {
            if (slots[s].busy_until >= it->start)
                continue; /* still holding a live value */
            if (slots[s].bytes >= it->bytes && (best == SIZE_MAX || slots[s].bytes < slots[best].bytes))
                best = s;
            if (largest == SIZE_MAX || slots[s].bytes > slots[largest].bytes)
                largest = s;
        }
        size_t chosen = best != SIZE_MAX ? best : largest;
        if (chosen == SIZE_MAX) {
            chosen = n_slots++;
            slots[chosen].bytes = 0;
        }
        if (slots[chosen].bytes < it->bytes)
            slots[chosen].bytes = it->bytes;
        slots[chosen].busy_until = it->end;
        it->slot = (int32_t)chosen;
    }
    size_t *bytes = kiln__calloc(ctx, n_slots ? n_slots : 1, sizeof *bytes);
    if (bytes == NULL)
        KILN_FAIL(ctx, KILN_ERR_NO_MEMORY, "out of memory planning %zu buffers", n_items);
    for (size_t s = 0; s < n_slots; s++)
        bytes[s] = slots[s].bytes;
    *out_slot_bytes = bytes;
    *out_n_slots = n_slots;
cleanup:
    kiln__free(ctx, order);
    kiln__free(ctx, slots);
    return rc;
}

bool kiln__plan_is_valid(const kiln__plan_item *items, size_t n_items, const size_t *slot_bytes,
                         size_t n_slots)
{
    for (size_t i = 0; i < n_items; i++) {
        if (items[i].slot < 0 || (size_t)items[i].slot >= n_slots ||
            slot_bytes[items[i].slot] < items[i].bytes)
            return false;
        for (size_t j = i + 1; j < n_items; j++) {
            if (items[i].slot == items[j].slot && items[i].start <= items[j].end &&
                items[j].start <= items[i].end)
                return false;
        }
    }
    return true;
}
