"""Train pix2pix: ``accelerate launch scripts/train.py --dataset huggan/facades --direction BtoA``.

A shim over ``pix2pix_hub.commands.train.main``: every flag is a field of ``pix2pix_hub.training.TrainingConfig``
(defaults: the paper's facades setup). ``--quick --dataset ../shared/data/facades/train`` trains a small model in a
few minutes on a CPU (``make demo``). Flags and launch lines for several GPUs or machines: docs/training.md.
A mistake prints one line (exit 2: a flag or folder; 1: the data; ``--debug`` shows the traceback); SIGTERM or
Ctrl-C save a checkpoint first (docs/safety.md).
"""

from pix2pix_hub.commands.train import main

if __name__ == "__main__":
    main()
