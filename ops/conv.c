/*
 * conv.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_conv[] = {
    OP_TABLE_END,
};
