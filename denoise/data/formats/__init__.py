"""Files on disk: images (PNG, JPEG, TIFF, ``.npy``), MATLAB files and hyperspectral cubes."""
