/*
 * variadic.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_variadic[] = {
    OP_TABLE_END,
};
