"""What the stages share to watch training: classification metrics, kNN, embeddings, frozen features."""
