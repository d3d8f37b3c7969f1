/*
 * expand_tile.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_expand_tile[] = {
    OP_TABLE_END,
};
