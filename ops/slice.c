/*
 * slice.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_slice[] = {
    OP_TABLE_END,
};
