/*
 * resize.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_resize[] = {
    OP_TABLE_END,
};
