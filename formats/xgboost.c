/*
 * xgboost.c — XGBoost JSON and UBJSON models. (Not implemented yet.)
 */
#include "core/error.h"
#include "formats/tree_loaders.h"

kiln_status xgboost_read(const uint8_t *data, size_t size, bool ubjson, region *mem, tree_schema *schema)
{
    (void)data, (void)size, (void)mem, (void)schema;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "XGBoost %s models are not supported yet", ubjson ? "UBJSON" : "JSON");
}
