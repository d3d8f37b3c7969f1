/*
 * binary.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_binary[] = {
    OP_TABLE_END,
};
