/*
 * Internal view of models for the executor: the parameter and buffer tensors, indexed by
 * value (NULL for values that are neither).
 */
#ifndef KILN_GRAPH_MODEL_INTERNAL_H
#define KILN_GRAPH_MODEL_INTERNAL_H

#include "graph/graph.h"
#include "kiln/model.h"

struct kiln_model {
    kiln_graph *graph;
    kiln_device *dev;
    uint64_t seed;
    kiln_tensor **state; /* one per graph value */
    size_t n_state;
};

#endif
