/*
 * normalization.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_normalization[] = {
    OP_TABLE_END,
};
