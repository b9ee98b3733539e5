"""Evaluating pretrained backbones: weighted kNN on their features."""
