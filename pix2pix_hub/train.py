"""``python -m pix2pix_hub.train ...`` / ``accelerate launch -m pix2pix_hub.train ...``: training from an installed
package, no clone needed (``pix2pix-hub train ...`` is the same). The flags are ``TrainingConfig``'s."""

from .commands.train import main

if __name__ == "__main__":
    main()
