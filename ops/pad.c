/*
 * pad.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_pad[] = {
    OP_TABLE_END,
};
