/*
 * matmul.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_matmul[] = {
    OP_TABLE_END,
};
