/* The engine registry: config engine id -> vtable, from the generated IOL_ENGINE_LIST. */
#include "engine.h"

struct iol_engine_entry {
    const struct iol_engine *vtable;
    unsigned max_depth;
};

#define IOL_ENGINE_ENTRY(id, vtable, max_depth) [id] = {&vtable, max_depth},
static const struct iol_engine_entry engines[IOL_ENGINE_COUNT] = {IOL_ENGINE_LIST(IOL_ENGINE_ENTRY)};
#undef IOL_ENGINE_ENTRY

const struct iol_engine *iol_engine_get(uint32_t id)
{
    return id < IOL_ENGINE_COUNT ? engines[id].vtable : NULL;
}

unsigned iol_engine_max_depth(uint32_t id)
{
    return id < IOL_ENGINE_COUNT ? engines[id].max_depth : 0;
}
