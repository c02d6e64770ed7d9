"""On-disk formats, one module per kind of file.

=====================  ===============================================  =======================
module                 files                                            written by
=====================  ===============================================  =======================
``minimum``            ``minima/<seed>.safetensors`` (weights, BN        training
                       buffers, predictions, metrics, learning curve)
``checkpoint``         ``minima/<seed>.ckpt`` (training resume state)    training, every epoch
``autoneb_state``      ``paths/<a>-<b>.state.pt`` (AutoNEB resume)       AutoNEB, every cycle
``pathfile``           ``paths/<a>-<b>.h5``, ``evaluated/<a>-<b>.h5``   AutoNEB, evaluation
``records``            the workflow's JSON files (dataset, rounds,      the bookkeeping rules
                       landscape, MST path list, table rows)
=====================  ===============================================  =======================

Every reader refuses, with a :class:`~nobarriers.core.errors.FileFormatError` naming the file,
what is not a complete file of its kind. Nothing is ever unpickled: resume files are loaded with
``torch.load(weights_only=True)``.
"""
