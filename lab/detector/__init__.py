"""Box data, training and evaluation of the garment detector (``lookalike train-detector``,
``lookalike eval-detector``)."""
