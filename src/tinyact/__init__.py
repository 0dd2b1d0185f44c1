"""TinyAct: real-time human action recognition split between edge devices and a cloud service.

The package is laid out along the data path of one clip::

    data  ->  models  ->  training  ->  classifiers  ->  edge  ->  cloud
    (video, clips)  (encoders)  (AE / KD loops)  (latent -> action)  (cameras)  (API, DB, dashboard)

with :mod:`tinyact.cli` as a thin command-line layer on top.
"""

__version__ = "0.1.0"
