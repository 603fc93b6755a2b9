"""Image IO, dataset registry, MATLAB-exact bicubic resizing and LR generation."""

from ignn_lab.data.datasets import ImageRecord, list_images, load_image, resolve_data_root
from ignn_lab.data.imresize import imresize, imresize_np
from ignn_lab.data.io import ImageReadError, read_image, write_image

__all__ = ["ImageRecord", "ImageReadError", "imresize", "imresize_np", "list_images", "load_image",
           "read_image", "resolve_data_root", "write_image"]
