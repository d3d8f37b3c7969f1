/*
 * version.c — the library version string.
 */
#include "kiln.h"

#define KILN_STRINGIFY2(x) #x
#define KILN_STRINGIFY(x) KILN_STRINGIFY2(x)

const char *kiln_version(void)
{
    return KILN_STRINGIFY(KILN_VERSION_MAJOR) "." KILN_STRINGIFY(KILN_VERSION_MINOR) "." KILN_STRINGIFY(
        KILN_VERSION_PATCH);
}
