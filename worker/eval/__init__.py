"""``cutout eval``: quality metrics of cutouts against truth masks.

Pure parts (metrics, manifest parsing, method specs, aggregation, reports) import only
numpy, scipy and Pillow; the engine and OpenCV (GrabCut) are imported where they are used.
"""
