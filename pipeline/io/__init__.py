"""Image files in and out, torch-free: OME-Zarr reading (`ngff`) with checked chunk codecs (`chunks`),
scanner TIFF reading (`tiff`) and OME-Zarr writing (`write`). Reading or writing a slide never imports
torch (tests/pipeline/test_io_torch_free.py)."""
