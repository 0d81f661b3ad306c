"""shl: steer, heal, loop. An ablation testbed for distilling steering vectors into LoRA adapters."""

__version__ = "0.1.0"
