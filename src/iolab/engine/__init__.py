"""iolab.engine: runs job plans on the C core (``iolab._core``).

``iolab.engine.config`` holds the packed C config (field table, ``pack_config``, header generator).
"""
