from stl10_lightning.data.datamodule import STL10DataModule

__all__ = ["STL10DataModule"]
