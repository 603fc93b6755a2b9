"""ignn-lab: a research kit for cross-scale internal graph super-resolution (IGNN).

Importing the package is cheap: it never pulls in faiss, papermill or widgets.
Import the submodules you need (``ignn_lab.data``, ``ignn_lab.graph``, ``ignn_lab.models``, ...).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
