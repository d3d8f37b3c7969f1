/*
 * generate.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_generate[] = {
    OP_TABLE_END,
};
