"""Every subcommand of ``pix2pix-hub``, one module each: ``register(subparsers)`` adds its parser (through
``policy.add_command``, which gives it ``--debug``) and ``run(args)`` parses nothing more and calls the library.

    translate.py    translate MODEL INPUT OUTPUT | MODEL OUTPUT --dataset SOURCE     (inference.batch)
    evaluate.py     evaluate MODEL --dataset SOURCE                                   (inference.evaluation)
    export_onnx.py  export-onnx MODEL OUT.onnx [--int8 ...]                           (inference.export, quantize)
    convert.py      convert latest_net_G.pth OUT                                      (hub.authors)
    train.py        train ... (also scripts/train.py, python -m pix2pix_hub.train)    (training)
    dataset.py      dataset check SOURCE | dataset prepare SOURCE OUT                 (data)
    space.py        space build OUT --model USER/NAME                                 (hub.space_build)

``policy.py`` is the one error policy (exit statuses, one-line messages, ``--debug``/``PIX2PIX_DEBUG``);
``options.py`` holds the options several commands share and opens a MODEL or a ``--dataset``. To add a command:
a module here with ``register`` and ``run``, listed in ``cli.COMMANDS``.
"""
