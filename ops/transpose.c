/*
 * transpose.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_transpose[] = {
    OP_TABLE_END,
};
