/*
 * gather.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_gather[] = {
    OP_TABLE_END,
};
