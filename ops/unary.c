/*
 * unary.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_unary[] = {
    OP_TABLE_END,
};
