"""Built-in trackers: wandb (Weights & Biases), mlflow. Each imports its library only when used, so shl runs
without them; install one with ``pip install 'shl[wandb]'`` or ``'shl[mlflow]'``."""

from shl.hookspecs import hookimpl

from .mlflow_tracker import MLflowTracker
from .wandb_tracker import WandbTracker

COMPONENTS = (WandbTracker, MLflowTracker)


@hookimpl
def shl_register_trackers(register):
    for cls in COMPONENTS:
        register(cls)
