"""Data sources (MNIST files, the embedded subset, stroke sequences) and the index sampler."""
