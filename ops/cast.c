/*
 * cast.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_cast[] = {
    OP_TABLE_END,
};
