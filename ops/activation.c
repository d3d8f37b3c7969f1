/*
 * activation.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_activation[] = {
    OP_TABLE_END,
};
