"""MI-KGNN: multi-interaction knowledge-graph neural network recommender (plain PyTorch)."""

__version__ = "0.1.0"
