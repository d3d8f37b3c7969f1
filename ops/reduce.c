/*
 * reduce.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_reduce[] = {
    OP_TABLE_END,
};
