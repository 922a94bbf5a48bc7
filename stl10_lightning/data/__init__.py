"""Data: the STL-10 reader, the synthetic generator, stl10-prepare, the data module, augmentations.

STL10DataModule (the configs' `stl10_lightning.data.STL10DataModule`) is imported on first use, so that
stl10-prepare and the synthetic generator start without loading Lightning.
"""

__all__ = ["STL10DataModule"]


def __getattr__(name: str):
    if name == "STL10DataModule":
        from stl10_lightning.data.datamodule import STL10DataModule

        return STL10DataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
