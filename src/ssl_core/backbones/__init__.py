"""Backbone providers (torchvision, timm) and the Backbone wrapper the methods train."""
