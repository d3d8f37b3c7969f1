/*
 * pool.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_pool[] = {
    OP_TABLE_END,
};
