"""Fine-tuning U²-Net per product vertical (``cutout tune``); needs the ``tune`` extra (torch).

Only :mod:`worker.tune.record` and :mod:`worker.tune.registry` work without torch: they
describe and check custom models; everything that trains imports torch.
"""
