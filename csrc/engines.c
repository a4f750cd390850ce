/* The engine registry: config engine id -> vtable. */
#include "engine.h"

const struct iol_engine *iol_engine_get(uint32_t id)
{
    switch (id) {
    case IOL_ENGINE_PSYNC:
        return &iol_engine_psync;
    case IOL_ENGINE_LIBAIO:
        return &iol_engine_libaio;
    case IOL_ENGINE_IO_URING:
        return &iol_engine_io_uring;
    default:
        return NULL;
    }
}
