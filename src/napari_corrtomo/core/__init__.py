"""The shared compute core: functions on NumPy/CuPy/dask arrays plus physical metadata.

No Qt and no napari are imported anywhere below this package.
"""
