/*
 * concat_split.c — (operators to be added)
 */
#include "ops/op.h"

const op_def ops_concat_split[] = {
    OP_TABLE_END,
};
