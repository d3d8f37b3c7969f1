/*
 * tree_loaders.h — readers for the tree-model files kiln loads natively. Each parses its format into a
 * tree_schema whose arrays live in `mem` (the model's region); tree_schema_make_graph then turns it into a
 * graph. They check the file's syntax and types; tree structure (child indices, cycles, feature ranges) is
 * checked when the engine builds the ensemble.
 */
#ifndef KILN_FORMATS_TREE_LOADERS_H
#define KILN_FORMATS_TREE_LOADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "formats/tree_schema.h"

/* XGBoost's JSON model (Booster.save_model("m.json")) or UBJSON (".ubj"), schema 1.x or 2.x. */
kiln_status xgboost_read(const uint8_t *data, size_t size, bool ubjson, region *mem, tree_schema *schema);
/* LightGBM's text model (Booster.save_model). */
kiln_status lightgbm_read(const uint8_t *data, size_t size, region *mem, tree_schema *schema);

#endif
