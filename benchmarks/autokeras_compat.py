"""What AutoKeras 3.0 needs to run here, shared by the benchmarks that compare against it.

AutoKeras 3.0's classification heads pass a numpy integer as `keras.layers.Dense(units=...)`,
which Keras 3 refuses; `patch_autokeras_dense()` casts `units` to int. The benchmarks report
the patch under `"workarounds"`.
"""

from __future__ import annotations


def patch_autokeras_dense() -> None:
    """Makes `keras.layers.Dense` accept a numpy integer `units` (once per process)."""
    import keras

    original = keras.layers.Dense.__init__
    if getattr(original, "_tfmeta_patched", False):
        return

    def init(self, units, *args, **kwargs):
        original(self, int(units), *args, **kwargs)

    init._tfmeta_patched = True
    keras.layers.Dense.__init__ = init
