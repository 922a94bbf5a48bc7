"""Train one stage of the STL-10 study: `python train.py stage=supervised backbone=resnet18`."""

from stl10_lightning.train import main

if __name__ == "__main__":
    main()
