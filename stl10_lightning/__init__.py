"""STL-10 study on PyTorch Lightning and Hydra: supervised, Barlow Twins, linear probe, pseudo-labeling."""
