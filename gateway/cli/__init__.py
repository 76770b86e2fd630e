"""The ``tollgate`` command: ``serve`` (workers, embedded Redis) and ``pricing`` (check, import)."""
