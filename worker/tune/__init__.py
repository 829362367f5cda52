"""Fine-tuning U²-Net per product vertical (``cutout tune``); needs the ``tune`` extra (torch).

Only :mod:`worker.tune.gate` (the validation gate) and :mod:`worker.tune.record` (the
record of a tuned model) work without torch; everything that trains imports torch.
"""
