/*
 * softmax.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_softmax[] = {
    OP_TABLE_END,
};
