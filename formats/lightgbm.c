/*
 * lightgbm.c — LightGBM text models. (Not implemented yet.)
 */
#include "core/error.h"
#include "formats/tree_loaders.h"

kiln_status lightgbm_read(const uint8_t *data, size_t size, region *mem, tree_schema *schema)
{
    (void)data, (void)size, (void)mem, (void)schema;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "LightGBM models are not supported yet");
}
