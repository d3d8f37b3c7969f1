/*
 * topk.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_topk[] = {
    OP_TABLE_END,
};
