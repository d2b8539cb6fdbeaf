"""The core's basic operators (registered through the ``heron`` entry points like any plugin)."""
