/*
 * misc.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_misc[] = {
    OP_TABLE_END,
};
