"""Backbone registry and per-model preprocessing (importing this registers every backbone)."""

from services.modellab.models import backbones as _backbones  # noqa: F401  (registers them)
from services.modellab.models import openclip as _openclip  # noqa: F401  (registers them)
from services.modellab.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from services.modellab.models.registry import (
    Backbone,
    BackboneSpec,
    Weights,
    available_backbones,
    backbone_spec,
    create_backbone,
    register_backbone,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "BackboneSpec",
    "Preprocess",
    "Weights",
    "available_backbones",
    "backbone_spec",
    "create_backbone",
    "register_backbone",
]
